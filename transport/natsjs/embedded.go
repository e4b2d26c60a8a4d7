package natsjs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures the in-process NATS server behind the embedded:
// broker URL.
type EmbeddedConfig struct {
	// DataDir holds the JetStream file store. Events, subscriptions' progress
	// and dead letters live there and survive a restart, including kill -9.
	// Required.
	DataDir string
	// Listen, when set ("127.0.0.1:4222", or ":0" for any free port), also
	// serves NATS clients on that address, so that other processes, the nats
	// CLI or another language's client can reach the server. Default "": the
	// server has no listener and only this process reaches it.
	Listen string
	// SyncAlways makes the store fsync every write before it confirms a
	// publish: nothing confirmed is lost even if the machine loses power, at a
	// large cost in publish throughput. Default false: writes reach the
	// operating system before the confirm (so a crash of the process loses
	// nothing) and are fsynced every SyncInterval.
	SyncAlways bool
	// SyncInterval is the time between fsyncs when SyncAlways is false: the
	// most a power loss can take. Default 1s.
	SyncInterval time.Duration
	// MaxPayload is the largest message the server accepts. Default 8 MiB,
	// above troupe's own default limit of 1 MiB so that an oversized message
	// reaches the consumer's size check and is dead-lettered, not refused.
	MaxPayload int
	// ReadyTimeout bounds the server's start. Default 30s.
	ReadyTimeout time.Duration
}

// Server is a NATS server with JetStream running inside this process.
type Server struct {
	ns *server.Server
}

// StartEmbedded starts an in-process NATS server with JetStream. It fails if
// the data directory cannot be created or another server holds it.
func StartEmbedded(cfg EmbeddedConfig) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("natsjs: embedded server needs a data directory (pass --data DIR)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("natsjs: data directory: %w", err)
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = 8 << 20
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	opts := &server.Options{
		ServerName:   "troupe-embedded",
		JetStream:    true,
		StoreDir:     cfg.DataDir,
		SyncInterval: cfg.SyncInterval,
		SyncAlways:   cfg.SyncAlways,
		MaxPayload:   int32(cfg.MaxPayload),
		NoSigs:       true,
		NoLog:        true,
		DontListen:   cfg.Listen == "",
		// Connections are in-process or on loopback; a slow test machine must
		// not look like a dead client.
		PingInterval: 30 * time.Second,
		MaxPending:   64 << 20,
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsjs: listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("natsjs: listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsjs: embedded server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsjs: embedded server not ready after %s (is %s used by another process?)", cfg.ReadyTimeout, cfg.DataDir)
	}
	return &Server{ns: ns}, nil
}

// ClientURL returns the nats:// URL of the server's listener, or "" when it
// has none.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Conn opens a new in-process client connection to the server.
func (s *Server) Conn(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(inProcess{s.ns}), nats.Name(name),
		nats.MaxReconnects(-1))
}

// Connect opens a transport on new in-process connections (one for
// publishing, one for consuming). Closing the transport closes them, not the
// server.
func (s *Server) Connect(ctx context.Context, cfg Config) (*Transport, error) {
	return open(ctx, cfg, func(name string) (*nats.Conn, error) {
		nc, err := s.Conn(name)
		if err != nil {
			return nil, fmt.Errorf("natsjs: connect to embedded server: %w", err)
		}
		return nc, nil
	})
}

// Shutdown stops the server and waits until it has stopped. The store stays
// on disk.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// OpenEmbedded starts an embedded server and connects a transport to it; the
// transport owns the server and shuts it down on Close.
func OpenEmbedded(ctx context.Context, ecfg EmbeddedConfig, cfg Config) (*Transport, error) {
	s, err := StartEmbedded(ecfg)
	if err != nil {
		return nil, err
	}
	t, err := s.Connect(ctx, cfg)
	if err != nil {
		s.Shutdown()
		return nil, err
	}
	t.server = s
	return t, nil
}
