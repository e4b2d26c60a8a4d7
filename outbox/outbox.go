package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/transport"
)

// Dialect names the SQL database an [Outbox] runs on.
type Dialect string

// The supported dialects.
const (
	// SQLite, through modernc.org/sqlite (driver name "sqlite"): the
	// embedded default. See [OpenSQLite] for the connection settings it
	// needs.
	SQLite Dialect = "sqlite"
	// Postgres, through github.com/jackc/pgx/v5/stdlib (driver name
	// "pgx"). Other PostgreSQL drivers work for writing and relaying, but
	// only pgx gives the relay LISTEN/NOTIFY; with another driver it polls.
	Postgres Dialect = "postgres"
)

// Defaults of [Options].
const (
	DefaultPrefix         = "troupe"
	DefaultPollInterval   = time.Second
	DefaultBatchSize      = 256
	DefaultPublishTimeout = 30 * time.Second
	DefaultMaxEventBytes  = transport.DefaultMaxMessageBytes
	DefaultInboxRetention = 7 * 24 * time.Hour
)

// Errors returned by the package. Match them with errors.Is.
var (
	// ErrNilTx is returned by the ...Tx functions when given a nil
	// transaction: begin one with db.BeginTx, or use the function without
	// Tx, which runs its own.
	ErrNilTx = errors.New("outbox: nil *sql.Tx: pass the transaction the events must commit with")
	// ErrNoOutbox is returned when ctx leads to no outbox: the app in ctx
	// was not given one with [Attach], and ctx is not a handler's of
	// [Subscribe].
	ErrNoOutbox = errors.New("outbox: no outbox for this context: call outbox.Attach(app, ob) before app.Start, and publish with a context that carries the app")
	// ErrNotOpen is returned when the outbox of [Declare] has no database:
	// the app has not started, or its open function found nothing to open
	// in this process (the service that writes to it runs elsewhere).
	ErrNotOpen = errors.New("outbox: the outbox has no database: it opens when the app starts, in a process that runs a service using it")
	// ErrUnknownDialect is returned by [New] for a database it cannot
	// recognize, or an Options.Dialect it does not support.
	ErrUnknownDialect = errors.New("outbox: unknown SQL dialect")
	// ErrTooLarge is returned when an encoded event exceeds
	// Options.MaxEventBytes. Nothing is written. It is troupe.ErrTooLarge.
	ErrTooLarge = troupe.ErrTooLarge
)

// Options configure an [Outbox]. Every field has a default.
type Options struct {
	// Dialect selects the SQL dialect. Default: detected from the driver
	// of db (modernc.org/sqlite → SQLite, pgx → Postgres); New fails with
	// ErrUnknownDialect when it cannot tell.
	Dialect Dialect
	// Prefix starts the names of the tables the outbox creates:
	// <prefix>_outbox, <prefix>_inbox and <prefix>_periods (see the package
	// documentation). Letters, digits and '_', starting with a letter, at
	// most 40 characters. Default "troupe". Two outboxes with different
	// prefixes in one database are independent.
	Prefix string
	// PollInterval is how often the relay looks for events when nothing
	// woke it: a safety net behind LISTEN/NOTIFY (PostgreSQL) and the
	// in-process signal (SQLite), which catch writes from other processes
	// and from transactions committed after their signal. Default 1s.
	PollInterval time.Duration
	// BatchSize is how many events the relay publishes per round trip to
	// the database and the broker. Default 256.
	BatchSize int
	// PublishTimeout bounds one batch's publish to the broker; a batch
	// that times out stays in the table and is tried again. On PostgreSQL
	// the relay's transaction, and so its lock, lasts at most about this
	// long. Default 30s.
	PublishTimeout time.Duration
	// MaxEventBytes is the largest event data accepted by PublishTx and
	// friends; a larger one fails with ErrTooLarge and nothing is written.
	// Default 1 MiB, the transports' default limit.
	MaxEventBytes int
	// InboxRetention is how long the inbox remembers a handled event id;
	// older records are pruned by the relay, and a copy of an event
	// delivered after that is handled again. Default 7 days, far beyond any
	// broker's redelivery horizon.
	InboxRetention time.Duration
	// Clock tells time for delayed events and schedules. Default the
	// system clock. Tests pass a troupetest.Clock.
	Clock Clock
	// Logger receives the relay's and scheduler's logs. Default: the
	// attached app's logger, else slog.Default().
	Logger *slog.Logger
}

// Outbox stores events in a SQL database inside the caller's transactions
// and relays them to the broker once committed. Create it with [New], give
// it to an app with [Attach], and write with [PublishTx]. It is safe for
// concurrent use.
//
// While the app runs, the outbox uses db's pool: one connection at a time
// for the relay and, on PostgreSQL with pgx, one more held for LISTEN. Leave
// db.SetMaxOpenConns at its default (no limit) or set it above the number of
// concurrent writers and handlers plus two, or the relay waits for a
// connection behind them.
type Outbox struct {
	db    *sql.DB
	opts  Options
	d     Dialect
	t     tables
	clock Clock
	log   *slog.Logger

	wake chan struct{} // the relay's in-process signal

	mu        sync.Mutex
	app       *troupe.App
	schedules []*schedule
	running   bool
	cancel    context.CancelFunc
	runCtx    context.Context
	done      sync.WaitGroup
	lock      relayLock
}

type tables struct {
	outbox, inbox, periods string
	channel                string // NOTIFY channel (PostgreSQL)
	lockKey                string // advisory lock name (PostgreSQL)
}

var prefixRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,39}$`)

// New returns an outbox on db, creating its tables if they do not exist.
// It fails with ErrUnknownDialect when the dialect is neither given nor
// detectable, with an error naming the field for an invalid option, and
// with the database's error when the tables cannot be created. db stays
// the caller's: the outbox never closes it.
func New(db *sql.DB, opts Options) (*Outbox, error) {
	if db == nil {
		return nil, errors.New("outbox: nil *sql.DB")
	}
	ob, err := newOutbox(opts)
	if err != nil {
		return nil, err
	}
	if err := ob.bind(db); err != nil {
		return nil, err
	}
	return ob, nil
}

// Declare declares an outbox of app whose database is opened when the app
// starts, for programs that learn where their data lives from the command
// line ([troupe.App.Flags], --data): a service can pass the outbox to
// [Subscribe] and keep it for [PublishTx] at declaration, before any flag
// is parsed.
//
// open runs in an OnStart function of app, before the relay starts and
// before any handler or route runs; ask it [troupe.App.DataDir] and
// [troupe.App.Runs] there. It returns the database, which the outbox then
// sets up as [New] does and closes when the app stops; or nil and no error
// when this process needs no outbox (none of the services that use it runs
// here), and the outbox then stays closed: PublishTx, the inbox and
// [Outbox.DB] find no database ([ErrNotOpen], nil). An error from open, an
// invalid option or a database the outbox cannot set up fails the app's
// Start.
//
// Declare attaches the outbox to app, as [Attach] does. A nil app or open
// panics: it is a programming mistake, caught at declaration.
func Declare(app *troupe.App, opts Options, open func(ctx context.Context) (*sql.DB, error)) *Outbox {
	if app == nil || open == nil {
		panic("outbox: Declare: nil app or open function")
	}
	ob, err := newOutbox(opts)
	if err != nil {
		// Reported by Start: a declaration cannot fail without making every
		// caller handle an error that only a wrong literal can cause.
		ob = &Outbox{opts: opts, wake: make(chan struct{}, 1), clock: systemClock{}, log: slog.Default()}
	}
	var opened *sql.DB
	app.OnStart(func(ctx context.Context) error {
		if err != nil {
			return err
		}
		db, err := open(ctx)
		if err != nil || db == nil {
			return err
		}
		if err := ob.bind(db); err != nil {
			db.Close()
			return err
		}
		opened = db
		return nil
	})
	// Registered before Attach's, so it runs after the relay has stopped
	// (OnStop functions run in reverse order).
	app.OnStop(func(context.Context) error {
		if opened == nil {
			return nil
		}
		return opened.Close()
	})
	Attach(app, ob)
	return ob
}

// newOutbox checks opts, fills in their defaults and returns an outbox
// with no database yet.
func newOutbox(opts Options) (*Outbox, error) {
	if opts.Dialect != "" && opts.Dialect != SQLite && opts.Dialect != Postgres {
		return nil, fmt.Errorf("%w %q: use outbox.SQLite or outbox.Postgres", ErrUnknownDialect, opts.Dialect)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("outbox: Options.Prefix %q: use a letter followed by up to 39 letters, digits or '_'", opts.Prefix)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchSize > 5000 {
		return nil, fmt.Errorf("outbox: Options.BatchSize %d: at most 5000", opts.BatchSize)
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = DefaultMaxEventBytes
	}
	if opts.InboxRetention <= 0 {
		opts.InboxRetention = DefaultInboxRetention
	}
	ob := &Outbox{opts: opts, clock: opts.Clock, wake: make(chan struct{}, 1)}
	if ob.clock == nil {
		ob.clock = systemClock{}
	}
	ob.log = opts.Logger
	if ob.log == nil {
		ob.log = slog.Default()
	}
	p := opts.Prefix
	ob.t = tables{outbox: p + "_outbox", inbox: p + "_inbox", periods: p + "_periods"}
	return ob, nil
}

// bind gives ob its database: it tells the dialect, creates the tables if
// they are missing and checks the connection settings.
func (ob *Outbox) bind(db *sql.DB) error {
	d := ob.opts.Dialect
	if d == "" {
		d = detect(db)
		if d == "" {
			return fmt.Errorf("%w: driver %T is not modernc.org/sqlite or pgx; set Options.Dialect to outbox.SQLite or outbox.Postgres", ErrUnknownDialect, db.Driver())
		}
	}
	ob.db, ob.d = db, d
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ob.migrate(ctx); err != nil {
		return err
	}
	if d == SQLite {
		// Without a busy timeout, concurrent writers (handlers, the relay)
		// fail at once with SQLITE_BUSY instead of waiting their turn.
		var ms int
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&ms); err == nil && ms == 0 {
			ob.log.Warn("outbox: this SQLite connection has no busy_timeout, so concurrent writers fail with SQLITE_BUSY; open the database with outbox.OpenSQLite, or add _pragma=busy_timeout(10000) and _txlock=immediate to its DSN")
		}
	}
	if d == Postgres {
		var schema string
		if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return fmt.Errorf("outbox: read current schema: %w", err)
		}
		ob.t.channel = schema + "." + ob.t.outbox
		ob.t.lockKey = "troupe-outbox-relay:" + ob.t.channel
	}
	return nil
}

// detect tells the dialect from the driver's type.
func detect(db *sql.DB) Dialect {
	t := reflect.TypeOf(db.Driver())
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch pkg := t.PkgPath(); {
	case strings.HasPrefix(pkg, "modernc.org/sqlite"):
		return SQLite
	case strings.HasPrefix(pkg, "github.com/jackc/pgx"), strings.HasPrefix(pkg, "github.com/lib/pq"):
		return Postgres
	}
	return ""
}

// DB returns the database the outbox writes to: nil for an outbox of
// [Declare] before the app started, or in a process that did not open it.
func (ob *Outbox) DB() *sql.DB { return ob.db }

// Dialect returns the outbox's SQL dialect.
func (ob *Outbox) Dialect() Dialect { return ob.d }

// Tables returns the names of the tables the outbox uses: events waiting
// to be relayed, handled event ids of the inbox, and fired schedule
// periods.
func (ob *Outbox) Tables() (outbox, inbox, periods string) {
	return ob.t.outbox, ob.t.inbox, ob.t.periods
}

// attached maps an app to its outbox, for PublishTx: *Outbox, or several
// when the app has more than one.
var attached sync.Map // *troupe.App → *Outbox or several

// several marks an app with more than one outbox attached: PublishTx then
// needs WithOutbox to know which to write to.
type several struct{}

// Attach makes ob the outbox of app: the relay and ob's schedules start
// with app.Start (after the broker is connected) and stop with app.Stop,
// and [PublishTx] with a context carrying app writes to ob. Call it before
// app.Start. An outbox serves one app; attaching it to a second one
// panics, as it is a programming mistake. An app may have several outboxes
// (one per service's database); PublishTx then needs [WithOutbox] to say
// which, and fails with [ErrNoOutbox] without it rather than guess.
func Attach(app *troupe.App, ob *Outbox) {
	ob.mu.Lock()
	if ob.app != nil && ob.app != app {
		ob.mu.Unlock()
		panic("outbox: Attach: this outbox is already attached to app " + ob.app.Name())
	}
	ob.app = app
	if ob.opts.Logger == nil {
		ob.log = app.Logger()
	}
	ob.mu.Unlock()
	if prev, loaded := attached.LoadOrStore(app, ob); loaded && prev != ob {
		attached.Store(app, several{})
	}
	app.OnStart(ob.start)
	app.OnStop(ob.stop)
}

// Wake asks the relay to look for events now. PublishTx calls it; call it
// after committing rows written some other way (PostgreSQL relays are
// woken by NOTIFY without it).
func (ob *Outbox) Wake() {
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many events wait in the outbox table, due or not,
// not counting those the broker rejected.
func (ob *Outbox) Pending(ctx context.Context) (int, error) {
	if ob.db == nil {
		return 0, ErrNotOpen
	}
	var n int
	err := ob.db.QueryRowContext(ctx, "SELECT count(*) FROM "+ob.t.outbox+" WHERE rejected IS NULL").Scan(&n)
	return n, err
}

func (ob *Outbox) start(ctx context.Context) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.db == nil {
		return nil // declared, and not needed in this process
	}
	if ob.running {
		return errors.New("outbox: already running")
	}
	lock, err := ob.newRelayLock(ctx)
	if err != nil {
		return err
	}
	ob.lock = lock
	rctx, cancel := context.WithCancel(context.Background())
	ob.cancel, ob.runCtx = cancel, rctx
	ob.running = true
	ob.done.Go(func() { ob.relay(rctx) })
	if ob.d == Postgres {
		ob.done.Go(func() { ob.listen(rctx) })
	}
	for _, s := range ob.schedules {
		ob.done.Go(func() { ob.runSchedule(rctx, s) })
	}
	return nil
}

func (ob *Outbox) stop(ctx context.Context) error {
	ob.mu.Lock()
	if !ob.running {
		ob.mu.Unlock()
		return nil
	}
	ob.running = false
	cancel, lock := ob.cancel, ob.lock
	ob.mu.Unlock()
	cancel()
	done := make(chan struct{})
	go func() { ob.done.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("outbox: stop: %w", ctx.Err())
	}
	if lock != nil {
		lock.close()
	}
	return nil
}

// outboxKey marks a context with the outbox of the handler it belongs to.
type outboxKey struct{}

// outboxOf finds the outbox for ctx: the handler's, else the app's.
func outboxOf(ctx context.Context) (*Outbox, *troupe.App, error) {
	app := troupe.FromContext(ctx)
	if ob, ok := ctx.Value(outboxKey{}).(*Outbox); ok {
		if ob.db == nil {
			return nil, app, ErrNotOpen
		}
		return ob, app, nil
	}
	if app == nil {
		return nil, nil, fmt.Errorf("%w (the context carries no app: use app.Context(ctx), or a handler's or route's context)", ErrNoOutbox)
	}
	switch v, _ := attached.Load(app); v := v.(type) {
	case *Outbox:
		if v.db == nil {
			return nil, app, ErrNotOpen
		}
		return v, app, nil
	case several:
		return nil, app, fmt.Errorf("%w: app %s has several outboxes; say which with outbox.WithOutbox(ctx, ob)", ErrNoOutbox, app.Name())
	}
	return nil, app, ErrNoOutbox
}

// WithOutbox returns ctx carrying ob, so that [PublishTx] writes to ob
// whatever app ctx carries. Handlers of [Subscribe] get such a context.
func WithOutbox(ctx context.Context, ob *Outbox) context.Context {
	return context.WithValue(ctx, outboxKey{}, ob)
}
