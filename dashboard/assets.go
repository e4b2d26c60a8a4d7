package dashboard

import (
	"crypto/subtle"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
)

// assets are the dashboard's page, script and style sheet, written for
// this package with no library: the graph is drawn as SVG by app.js.
//
//go:embed assets
var assets embed.FS

// csp lets the page load only its own script, style and frames and talk
// only to its own server.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

func (d *Dashboard) serveIndex(w http.ResponseWriter, r *http.Request) {
	d.serveFile(w, r, "index.html")
}

func (d *Dashboard) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	d.serveFile(w, r, name)
}

func (d *Dashboard) serveFile(w http.ResponseWriter, _ *http.Request, name string) {
	b, err := fs.ReadFile(assets, path.Join("assets", name))
	if err != nil {
		http.Error(w, "no such file", http.StatusNotFound)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	// The assets change with the binary; no-cache revalidates nothing but
	// keeps a browser from mixing an old script with a new server.
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "SAMEORIGIN")
	_, _ = w.Write(b)
}

// equalToken compares tokens in time that does not depend on where they
// differ.
func equalToken(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
