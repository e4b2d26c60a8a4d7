package troupe_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"github.com/troupe-go/troupe"
)

// NewLogger builds the same loggers as the --log-format and --log-level
// flags of App.Main, for a program's own logs or for Config.Logger.
func ExampleNewLogger() {
	var buf bytes.Buffer
	log, err := troupe.NewLogger(&buf, "json", "warn")
	if err != nil {
		panic(err)
	}
	log.Info("reserved stock", "sku", "book") // below warn: not written
	log.Warn("stock low", "sku", "book", "left", 3)

	var rec struct {
		Level, Msg, SKU string
		Left            int
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		panic(err)
	}
	fmt.Println(rec.Level, rec.Msg, rec.SKU, rec.Left)

	// Unknown values are refused, with the valid ones.
	_, err = troupe.NewLogger(os.Stderr, "yaml", "")
	fmt.Println(err)
	_, err = troupe.NewLogger(os.Stderr, "", "trace")
	fmt.Println(err)
	// Output:
	// WARN stock low book 3
	// troupe: log format "yaml": use auto, text, color or json
	// troupe: log level "trace": use debug, info, warn or error
}

// An app that sets no Config.Logger logs as its command line says: in color
// on a terminal, as key=value text otherwise, or as JSON:
//
//	./shop --log-format json --log-level debug
//	TROUPE_LOG_FORMAT=json ./shop
//
// A logger given in Config wins; the flags are then only checked.
func ExampleApp_Main_logging() {
	log, err := troupe.NewLogger(os.Stderr, troupe.LogJSON, "info")
	if err != nil {
		panic(err)
	}
	app := troupe.New(troupe.Config{Name: "shop", Logger: log})
	app.Service("orders").HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	app.Main()
}
