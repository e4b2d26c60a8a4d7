package mailsink

import (
	"html/template"
	"net/http"
)

// Page serves the mails the sink received as an HTML page, newest first:
// the mail sink's panel in the dashboard (dashboard.Panel).
func (s *Sink) Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mails := s.Mails("")
		for i, j := 0, len(mails)-1; i < j; i, j = i+1, j-1 {
			mails[i], mails[j] = mails[j], mails[i]
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := pageTmpl.Execute(w, mails); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

var pageTmpl = template.Must(template.New("mail").Parse(`<!doctype html>
<meta charset="utf-8"><title>Mail sink</title>
<style>
body{font:14px system-ui,sans-serif;margin:1em;color:#202124}
.mail{border:1px solid #dadce0;border-radius:6px;padding:.6em .8em;margin:.6em 0}
.head{color:#5f6368;font-size:12px}
pre{white-space:pre-wrap;margin:.4em 0 0}
</style>
<h3>{{len .}} mail{{if ne (len .) 1}}s{{end}} received</h3>
{{range .}}<div class="mail">
<div class="head">#{{.ID}} · {{.ReceivedAt.Format "15:04:05"}} · from {{.From}} to {{range $i, $t := .To}}{{if $i}}, {{end}}{{$t}}{{end}}</div>
<b>{{.Subject}}</b>
<pre>{{.Body}}</pre>
</div>{{else}}<p>Nothing yet: register a user (POST /users) and the welcome mail shows here.</p>{{end}}
`))
