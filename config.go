package troupe

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/troupe-go/troupe/transport"
)

// Defaults of Config, which its fields' docs name.
const (
	// DefaultBroker is the broker URL of an app that names none (Config,
	// --broker, $TROUPE_BROKER): the embedded NATS JetStream server.
	DefaultBroker = "embedded:"
	// DefaultHTTPAddr is where an app serves HTTP when Config.HTTPAddr is
	// empty and a running service has routes (or the app has routes of its
	// own, [App.HandleHTTP]).
	DefaultHTTPAddr = "localhost:8080"
	// DefaultShutdownTimeout bounds Stop when Config.ShutdownTimeout is
	// zero.
	DefaultShutdownTimeout = 30 * time.Second
)

// Config declares an app and how it runs. Every field has a default; the
// standard command line of [App.Main] overrides the run settings.
type Config struct {
	// Name identifies the app. It namespaces the app's streams, queues and
	// event sources on the broker, so two apps can share one broker. Required:
	// a letter followed by letters, digits, '_' or '-'.
	Name string
	// Broker selects the transport by URL: its scheme names the driver
	// that opens it (see transport.RegisterScheme), and the driver's
	// package documents its options. Default: $TROUPE_BROKER, else
	// [DefaultBroker], an in-process NATS JetStream server storing its data in
	// DataDir (package natsjs, which also takes "nats://host:4222" for an
	// external NATS server with JetStream); "amqp://user:pass@host:5672/vhost"
	// uses RabbitMQ (package rabbitmq). An unknown scheme fails Start with
	// an error wrapping transport.ErrUnknownScheme. Flag --broker.
	Broker string
	// DataDir is where the embedded broker keeps its files. Default:
	// $TROUPE_DATA, else ".troupe/<name>" under the working directory.
	// Flag --data.
	DataDir string
	// Services lists the services this process runs; the others are declared
	// but neither consume nor serve HTTP here. Default: all. Flag --services.
	Services []string
	// HTTPAddr is where the services' HTTP routes are served. Default
	// [DefaultHTTPAddr] when a running service has routes; "off" disables the
	// server. Flag --http.
	HTTPAddr string
	// ShutdownTimeout bounds how long Stop waits for running handlers and
	// HTTP requests before cancelling them; their events are then redelivered.
	// Default [DefaultShutdownTimeout].
	ShutdownTimeout time.Duration
	// Logger receives the app's logs. Default slog.Default().
	Logger *slog.Logger
	// Transport, when set, is used instead of opening Broker; the app does
	// not close it. For tests and custom setups.
	Transport transport.Transport
}

func (a *App) brokerURL() string {
	if a.cfg.Transport != nil {
		return "(custom transport)"
	}
	if a.cfg.Broker != "" {
		return a.cfg.Broker
	}
	if b := os.Getenv("TROUPE_BROKER"); b != "" {
		return b
	}
	return DefaultBroker
}

func (a *App) dataDir() string {
	if a.cfg.DataDir != "" {
		return a.cfg.DataDir
	}
	if d := os.Getenv("TROUPE_DATA"); d != "" {
		return d
	}
	return filepath.Join(".troupe", a.cfg.Name)
}

// DataDir returns where the embedded broker keeps its files: --data,
// Config.DataDir, $TROUPE_DATA, else ".troupe/<name>". After [App.Main]
// has parsed the command line it includes --data, so components that keep
// files beside the broker's (an SQLite outbox) ask for it in OnStart.
func (a *App) DataDir() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dataDir()
}

func (a *App) shutdownTimeout() time.Duration {
	if a.cfg.ShutdownTimeout > 0 {
		return a.cfg.ShutdownTimeout
	}
	return DefaultShutdownTimeout
}
