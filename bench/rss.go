package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport/natsjs"
)

// Scenario 3b: the memory of a consumer process while a backlog waits on the
// broker. The parent runs an embedded server that listens on loopback and
// stores the backlog; the consumer is this program again ("rss-child"), a
// troupe app that handles a fixed number of events and then reads its own
// VmRSS and VmHWM, so the server's memory is not counted.

const rssHandled = 5_000 // events the child handles before it reads its memory

func rssPlan(e *env) []*Measure {
	var out []*Measure
	for _, b := range e.rssBacklogs {
		out = append(out, &Measure{Scenario: "rss", Broker: "embedded", Case: Int(b) + " events",
			Client: "troupe", Runs: e.o.runs, Run: func(ctx context.Context) (Metrics, error) { return rssRun(ctx, e, b) }})
	}
	return out
}

func rssDeclare(cfg troupe.Config, h troupe.Handler[benchEvent]) *troupe.App {
	cfg.HTTPAddr, cfg.Logger = "off", quiet
	a := troupe.New(cfg)
	a.Service("pub").Publishes(benchTopic)
	troupe.Subscribe(a.Service("sink"), benchTopic, "sink", h)
	return a
}

func rssRun(ctx context.Context, e *env, backlog int) (Metrics, error) {
	dir, err := os.MkdirTemp(e.dataDir, "rss-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	ns := unique("rss")
	tr, err := srv.Connect(ctx, natsjs.Config{Namespace: ns, Logger: quiet})
	if err != nil {
		return nil, err
	}
	defer tr.Close(context.Background())
	pub := rssDeclare(troupe.Config{Name: ns, Transport: tr, Services: []string{"pub"}},
		func(context.Context, troupe.Event[benchEvent]) error { return nil })
	if err := pub.Start(ctx); err != nil {
		return nil, err
	}
	err = troupePublishParallel(pub.Context(ctx), backlog)
	stopApp(pub)
	if err != nil {
		return nil, err
	}

	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(cctx, exe, "rss-child", "--url", srv.ClientURL(), "--name", ns, "--handle", strconv.Itoa(rssHandled))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("consumer process: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var r struct{ RSSKB, HWMKB int64 }
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("consumer process said %q: %v", stdout.String(), err)
	}
	return Metrics{"rss": float64(r.RSSKB) * 1024 / 1e6, "hwm": float64(r.HWMKB) * 1024 / 1e6}, nil
}

// rssChild is the consumer process: it handles --handle events of the
// namespace's backlog, then prints its VmRSS and VmHWM in kB as JSON.
func rssChild(args []string) error {
	fs := flag.NewFlagSet("rss-child", flag.ContinueOnError)
	url := fs.String("url", "", "NATS URL of the server holding the backlog")
	name := fs.String("name", "", "app name (namespace)")
	handle := fs.Int("handle", rssHandled, "events to handle before reading the memory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var n atomic.Int64
	reached := make(chan struct{})
	a := rssDeclare(troupe.Config{Name: *name, Broker: *url, Services: []string{"sink"}},
		func(ctx context.Context, ev troupe.Event[benchEvent]) error {
			if n.Add(1) == int64(*handle) {
				close(reached)
			}
			return nil
		})
	ctx := context.Background()
	if err := a.Start(ctx); err != nil {
		return err
	}
	defer stopApp(a)
	select {
	case <-reached:
	case <-time.After(3 * time.Minute):
		return fmt.Errorf("handled %d of %d events", n.Load(), *handle)
	}
	rss, hwm, err := procStatus()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(struct{ RSSKB, HWMKB int64 }{rss, hwm})
}

// procStatus reads VmRSS and VmHWM (kB) from /proc/self/status.
func procStatus() (rss, hwm int64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			rss, _ = strconv.ParseInt(fields[0], 10, 64)
		case "VmHWM":
			hwm, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/self/status")
	}
	return rss, hwm, s.Err()
}
