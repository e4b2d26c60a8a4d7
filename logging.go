package troupe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// Log formats accepted by [NewLogger] and by the --log-format flag of
// [App.Main].
const (
	// LogAuto writes [LogColor] to a terminal and [LogText] to anything else
	// (a pipe, a file, a container runtime's log collector). It also picks
	// LogText when the NO_COLOR environment variable is set to a non-empty
	// value or TERM is "dumb".
	LogAuto = "auto"
	// LogText writes one line per record in slog's key=value text form
	// (logfmt): time=… level=INFO msg="troupe app started" app=shop. No ANSI
	// escapes; easy to grep and to parse.
	LogText = "text"
	// LogColor writes short lines for people at a terminal: a time of day, a
	// three-letter level in color (INF green, WRN yellow, ERR red), the
	// message and its attributes.
	LogColor = "color"
	// LogJSON writes one JSON object per record (slog's JSON form): time,
	// level, msg and the attributes as fields.
	LogJSON = "json"
)

var (
	logFormats = []string{LogAuto, LogText, LogColor, LogJSON}
	logLevels  = map[string]slog.Level{
		"debug": slog.LevelDebug,
		"info":  slog.LevelInfo,
		"warn":  slog.LevelWarn,
		"error": slog.LevelError,
	}
)

// NewLogger returns a logger that writes records at level or above to w in
// format. format is one of [LogAuto], [LogText], [LogColor] or [LogJSON]
// (default, when empty: auto); level is debug, info, warn or error (default,
// when empty: info). Both are case-insensitive. Any other value is an error
// that lists the valid ones, and no logger is returned.
//
// [App.Main] builds the app's logger with it from --log-format and
// --log-level; call it yourself to log the same way from your own code or
// to pass the result as [Config.Logger].
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	f, err := logFormat(format, "log format")
	if err != nil {
		return nil, fmt.Errorf("troupe: %w", err)
	}
	lvl, err := logLevel(level, "log level")
	if err != nil {
		return nil, fmt.Errorf("troupe: %w", err)
	}
	switch resolveFormat(w, f) {
	case LogColor:
		// A time of day to the millisecond: the date rarely matters to
		// someone watching a terminal, and short lines leave room for the
		// attributes.
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: lvl, TimeFormat: "15:04:05.000"})), nil
	case LogJSON:
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// logFormat normalizes a log format ("" is auto); what names the value in
// the error.
func logFormat(format, what string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(format))
	if f == "" {
		return LogAuto, nil
	}
	if slices.Contains(logFormats, f) {
		return f, nil
	}
	return "", fmt.Errorf("%s %q: use %s", what, format, orList(logFormats))
}

// logLevel parses a log level ("" is info); what names the value in the
// error.
func logLevel(level, what string) (slog.Level, error) {
	l := strings.ToLower(strings.TrimSpace(level))
	if l == "" {
		return slog.LevelInfo, nil
	}
	if lvl, ok := logLevels[l]; ok {
		return lvl, nil
	}
	return 0, fmt.Errorf("%s %q: use %s", what, level, orList([]string{"debug", "info", "warn", "error"}))
}

// resolveFormat turns auto into color or text for w: color when w has a
// file descriptor that is a terminal and neither NO_COLOR
// (https://no-color.org) nor TERM=dumb asks for plain text.
func resolveFormat(w io.Writer, format string) string {
	if format != LogAuto {
		return format
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return LogText
	}
	if f, ok := w.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		return LogColor
	}
	return LogText
}

// orList joins values as "a, b, c or d".
func orList(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// stdDefaultLogger is slog's default logger as the process started, before
// any program code could replace it: an app whose logger is this one was
// given no logger of its own, so the log flags of App.Main choose it.
var stdDefaultLogger = slog.Default()

// Logger returns a logger that writes through the app's logger:
// Config.Logger, else the one App.Main builds from --log-format and
// --log-level, else slog.Default(). It follows the app's logger even when
// taken before Main replaced it, so components may keep it from the time
// they are declared.
func (a *App) Logger() *slog.Logger { return slog.New(appHandler{a: a}) }

// appHandler writes through the app's current logger, applying the
// attributes and groups added to it on the way.
type appHandler struct {
	a   *App
	ops []func(slog.Handler) slog.Handler
}

func (h appHandler) current() slog.Handler {
	hh := h.a.log.Handler()
	for _, op := range h.ops {
		hh = op(hh)
	}
	return hh
}

func (h appHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.log.Handler().Enabled(ctx, l)
}

func (h appHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h appHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return appHandler{a: h.a, ops: append(slices.Clip(h.ops), func(x slog.Handler) slog.Handler { return x.WithAttrs(as) })}
}

func (h appHandler) WithGroup(name string) slog.Handler {
	return appHandler{a: h.a, ops: append(slices.Clip(h.ops), func(x slog.Handler) slog.Handler { return x.WithGroup(name) })}
}
