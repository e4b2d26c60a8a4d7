package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/troupe-go/troupe/transport/natsjs"
)

// env holds what every scenario shares: the embedded server, the external
// brokers that answered, the counts of this mode.
type env struct {
	o       options
	dataDir string
	srv     *natsjs.Server // the embedded broker of every "embedded" measure

	amqpOK, natsOK     bool
	rabbitVersion      string
	natsVersion        string
	amqpSkip, natsSkip string
	pgSkip             string

	// counts of this mode
	nEmbedded, nRabbit, nNATS int
	flowOrders, flowInFlight  int
	flowPaced                 time.Duration // how long the paced run lasts at 1,000 orders/s
	subsPoints, topicPoints   []int
	scalingEvents             int
	rssBacklogs               []int
	outboxTx                  int

	loadStart string // /proc/loadavg when the run began
}

func newEnv(ctx context.Context, o options) (*env, error) {
	e := &env{o: o, loadStart: loadAvg()}
	if o.quick {
		// Long enough that a run is not mostly start-up (a 20k-event run
		// lasted a fifth of a second), short enough for 5 minutes.
		e.nEmbedded, e.nRabbit, e.nNATS = 50_000, 10_000, 40_000
		e.flowOrders, e.flowInFlight, e.flowPaced = 15_000, 500, 3*time.Second
		e.subsPoints, e.topicPoints = []int{1, 8, 32}, []int{1, 100, 1000}
		e.scalingEvents = 10_000
		e.rssBacklogs = []int{10_000, 200_000}
		e.outboxTx = 1_000
	} else {
		e.nEmbedded, e.nRabbit, e.nNATS = 1_000_000, 200_000, 200_000
		e.flowOrders, e.flowInFlight, e.flowPaced = 100_000, 1_000, 20*time.Second
		e.subsPoints, e.topicPoints = []int{1, 2, 4, 8, 16, 32}, []int{1, 10, 100, 1000}
		e.scalingEvents = 100_000
		e.rssBacklogs = []int{10_000, 1_000_000}
		e.outboxTx = 20_000
	}
	if o.events > 0 {
		e.nEmbedded, e.nRabbit, e.nNATS = o.events, o.events, o.events
	}
	if o.orders > 0 {
		e.flowOrders = o.orders
	}
	dir, err := os.MkdirTemp("", "troupe-bench-")
	if err != nil {
		return nil, err
	}
	e.dataDir = dir
	e.srv, err = natsjs.StartEmbedded(natsjs.EmbeddedConfig{DataDir: dir + "/embedded"})
	if err != nil {
		return nil, err
	}
	if c, err := amqp.Dial(o.amqpURL); err != nil {
		e.amqpSkip = err.Error()
	} else {
		e.amqpOK = true
		if v, ok := c.Properties["version"].(string); ok {
			e.rabbitVersion = v
		}
		c.Close()
	}
	if nc, err := nats.Connect(o.natsURL, nats.Timeout(3*time.Second)); err != nil {
		e.natsSkip = err.Error()
	} else {
		js, _ := nc.JetStream()
		if _, err := js.AccountInfo(); err != nil {
			e.natsSkip = "JetStream: " + err.Error()
		} else {
			e.natsOK = true
		}
		e.natsVersion = nc.ConnectedServerVersion()
		nc.Close()
	}
	if err := pingPostgres(); err != nil {
		e.pgSkip = err.Error()
	}
	return e, nil
}

func (e *env) Close() {
	e.srv.Shutdown()
	_ = os.RemoveAll(e.dataDir)
}

// embeddedConn opens an in-process client connection to the embedded server.
func (e *env) embeddedConn() (*nats.Conn, error) { return e.srv.Conn("bench") }

// unique returns prefix followed by 8 random hex digits, for namespaces,
// streams and queues no other run uses.
func unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// machine describes the host for the report.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if f, err := os.Open("/proc/meminfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
				var kb int
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%s, %d cores%s, %s/%s", cpu, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH)
}

// moduleVersions returns the versions of the libraries under test, as built.
func moduleVersions() map[string]string {
	out := map[string]string{}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return out
	}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v = "(local " + d.Replace.Path + ")"
		}
		out[d.Path] = v
	}
	return out
}

// embeddedVersion is the nats-server version embedded in troupe.
func embeddedVersion() string { return server.VERSION }

// loadAvg returns the 1-, 5- and 15-minute load averages, to show how busy
// the machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
