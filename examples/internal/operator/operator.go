// Package operator gives every example app the same operator surface, so
// that a newcomer who learned one app knows them all:
//
//   - the dashboard at /ui/ (its URL, with the admin token, is logged at
//     start), with the app's own panels;
//   - a journal of every publish and handling, behind the dashboard's
//     timelines and the trace command;
//   - Prometheus metrics at /metrics;
//   - the commands graph (package topology), tail, trace and dlq (package
//     ops), and contract (package contract), which importing this package
//     registers.
//
// Run "<app> -h" for the app's flags and commands.
package operator

import (
	"fmt"

	"github.com/troupe-go/troupe"
	_ "github.com/troupe-go/troupe/contract" // the contract command
	"github.com/troupe-go/troupe/dashboard"
	"github.com/troupe-go/troupe/journal"
	"github.com/troupe-go/troupe/metrics"
	_ "github.com/troupe-go/troupe/ops"      // the tail, trace and dlq commands
	_ "github.com/troupe-go/troupe/topology" // the graph command
)

// Install adds the operator surface to app, with panels as extra tabs of
// the dashboard. Call it once, before the app starts. It fails when the
// metrics or the dashboard refuse their options (a bad panel).
func Install(app *troupe.App, panels ...dashboard.Panel) error {
	journal.Install(app)
	if err := metrics.Install(app); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if _, err := dashboard.Install(app, dashboard.WithPanels(panels...)); err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
