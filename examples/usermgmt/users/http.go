package users

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/internal/tally"
	"github.com/troupe-go/troupe/examples/usermgmt/internal/httpx"
	"github.com/troupe-go/troupe/outbox"
)

// Limits of what POST /users accepts.
const (
	maxNameLen  = 100
	maxEmailLen = 254 // RFC 5321's limit for a path
	idLen       = 16  // hex digits of a user id
	recentLimit = 100 // users GET /users lists
)

const registerExample = `{"name":"Ada","email":"ada@example.com"}`

// User is a user as the API shows it.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	// WelcomeMail is the registration's outcome: "pending", or the
	// status of its outcome event ("sent", "skipped", "failed"); the
	// answer of a POST /users that waited has the event too.
	WelcomeMail *OutcomeEvent `json:"welcome_mail,omitempty"`
	// Replayed is set in the answer to a POST /users whose Idempotency-Key
	// was sent before: it describes the user that request made, and
	// nothing new was registered.
	Replayed bool  `json:"replayed,omitempty"`
	Links    Links `json:"links"`
}

// Registration is one registration as GET /users lists it; it stays after
// the user is deleted.
type Registration struct {
	UserID       string    `json:"user_id"`
	Name         string    `json:"name"`
	Email        string    `json:"email"`
	Status       string    `json:"status"`
	RegisteredAt time.Time `json:"registered_at"`
	Links        Links     `json:"links"`
}

// List is the body of GET /users: every registration counted by status,
// and the newest registrations.
type List struct {
	tally.Counts
	Registrations []Registration `json:"registrations"`
}

// Links are the URLs of a resource.
type Links struct {
	Self string `json:"self"`
}

func userPath(id string) string { return "/users/" + id }

// api serves the user service's routes.
type api struct {
	log     *slog.Logger
	ob      *outbox.Outbox
	maxWait time.Duration
	await   *awaiter
}

// registerRequest is the body of POST /users.
type registerRequest struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// register creates a user. The row and its user_registered event commit
// in one transaction; the answer is 202 at once, or, when the client sent
// "Prefer: wait=N", 201 once an outcome of the registration arrived (202
// if none did within N seconds). Nothing is written or published for a
// bad request.
func (a *api) register(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	wait, err := preferWait(r.Header, a.maxWait)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	key, err := httpjson.IdempotencyKey(r)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req registerRequest
	if status, err := httpx.DecodeBody(w, r, &req, registerExample); err != nil {
		httpjson.WriteError(w, status, err.Error())
		return
	}
	name, email, err := validate(req)
	if err != nil {
		httpjson.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	u := User{ID: newUserID(), Name: name, Email: email, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	u.Links.Self = userPath(u.ID)

	var expect *troupe.Expectation
	if wait > 0 && a.await.enabled() {
		e, err := a.await.expect(r.Context(), u.ID)
		if err != nil {
			a.log.Error("users: cannot wait for outcomes", "err", err)
			httpjson.WriteError(w, http.StatusServiceUnavailable, "cannot wait for the outcome right now; try again without Prefer: wait")
			return
		}
		defer e.Close()
		expect = e
	}

	// The user's id is the registration's correlation id: the mailer's
	// and the coupon service's events about it carry it too.
	ctx := outbox.WithOutbox(troupe.WithCorrelationID(r.Context(), u.ID), a.ob)
	existing, replay, err := a.insert(ctx, u, key)
	switch {
	case err != nil:
		a.log.Error("users: could not register "+u.ID, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the user could not be registered right now; try again (with the same Idempotency-Key, if you sent one)")
		return
	case replay != "":
		a.replay(w, r, key, replay)
		return
	case existing != "":
		w.Header().Set("Location", userPath(existing))
		httpjson.WriteError(w, http.StatusConflict, fmt.Sprintf("a user with email %s exists already: %s", email, userPath(existing)))
		return
	}
	a.log.Info(fmt.Sprintf("users: registered %s <%s> as %s", u.Name, u.Email, u.ID))

	w.Header().Set("Location", u.Links.Self)
	if expect == nil {
		u.WelcomeMail = &OutcomeEvent{Status: "pending"}
		httpjson.WriteJSON(w, http.StatusAccepted, u)
		return
	}
	wctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	reply, err := expect.Wait(wctx)
	switch {
	case err == nil:
		o := a.await.outcome(reply)
		u.WelcomeMail = &o
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
		httpjson.WriteJSON(w, http.StatusCreated, u)
	case r.Context().Err() == nil:
		u.WelcomeMail = &OutcomeEvent{Status: "pending"}
		httpjson.WriteJSON(w, http.StatusAccepted, u)
	}
	// Otherwise the client left; the user exists and the choreography goes on.
}

// insert writes u, its registration and its user_registered event in one
// transaction, with key (if any) standing for u. When the email belongs to
// another user it writes nothing and returns that user's id; when key was
// sent before, it writes nothing and returns the id of the user that
// request made (replay).
func (a *api) insert(ctx context.Context, u User, key string) (existing, replay string, err error) {
	tx, err := a.ob.DB().BeginTx(ctx, nil)
	if err != nil {
		return "", "", err
	}
	defer tx.Rollback()
	if key != "" {
		// On PostgreSQL a second request with the key waits here until
		// the first commits or rolls back.
		res, err := tx.ExecContext(ctx, store.Q(a.ob, `INSERT INTO users_idempotency (idem_key, user_id, created_at) VALUES (?, ?, ?)
			ON CONFLICT (idem_key) DO NOTHING`), key, u.ID, u.CreatedAt.UnixMicro())
		if err != nil {
			return "", "", err
		}
		if n, err := res.RowsAffected(); err != nil {
			return "", "", err
		} else if n == 0 {
			err := tx.QueryRowContext(ctx, store.Q(a.ob, `SELECT user_id FROM users_idempotency WHERE idem_key = ?`), key).Scan(&replay)
			return "", replay, err
		}
	}
	res, err := tx.ExecContext(ctx, store.Q(a.ob, `INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (email) DO NOTHING`), u.ID, u.Name, u.Email, u.CreatedAt.UnixMicro())
	if err != nil {
		return "", "", err
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", "", err
	} else if n == 0 {
		err := tx.QueryRowContext(ctx, store.Q(a.ob, `SELECT id FROM users WHERE email = ?`), u.Email).Scan(&existing)
		return existing, "", err
	}
	if _, err := tx.ExecContext(ctx, store.Q(a.ob, `INSERT INTO users_registrations (user_id, name, email, status, registered_at) VALUES (?, ?, ?, ?, ?)`),
		u.ID, u.Name, u.Email, StatusPending, u.CreatedAt.UnixMicro()); err != nil {
		return "", "", err
	}
	ev := RegisteredV1{UserID: u.ID, Name: u.Name, Email: u.Email, RegisteredAt: u.CreatedAt}
	if err := outbox.PublishTx(ctx, tx, Registered, ev); err != nil {
		return "", "", err
	}
	return "", "", tx.Commit()
}

// replay answers a POST /users whose Idempotency-Key made user id before:
// 202 with that registration as it stands, nothing new registered.
func (a *api) replay(w http.ResponseWriter, r *http.Request, key, id string) {
	reg, err := a.registration(r.Context(), id)
	if err != nil {
		a.log.Error("users: read registration "+id, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the user could not be read right now; try again with the same Idempotency-Key")
		return
	}
	a.log.Info(fmt.Sprintf("users: POST /users again with Idempotency-Key %q: answered with %s, nothing new registered", key, id))
	u := User{ID: id, Name: reg.Name, Email: reg.Email, CreatedAt: reg.RegisteredAt, WelcomeMail: &OutcomeEvent{Status: reg.Status},
		Replayed: true, Links: Links{Self: userPath(id)}}
	w.Header().Set("Location", u.Links.Self)
	httpjson.WriteJSON(w, http.StatusAccepted, u)
}

// registration reads the registration of user id.
func (a *api) registration(ctx context.Context, id string) (Registration, error) {
	reg := Registration{UserID: id, Links: Links{Self: userPath(id)}}
	var at int64
	err := a.ob.DB().QueryRowContext(ctx, store.Q(a.ob, `SELECT name, email, status, registered_at FROM users_registrations WHERE user_id = ?`), id).
		Scan(&reg.Name, &reg.Email, &reg.Status, &at)
	reg.RegisteredAt = time.UnixMicro(at).UTC()
	return reg, err
}

// list serves the registrations' counts by status and the newest of them.
func (a *api) list(w http.ResponseWriter, r *http.Request) {
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	out, err := a.readList(r.Context())
	if err != nil {
		a.log.Error("users: list registrations", "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the registrations cannot be read right now; try again")
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
}

func (a *api) readList(ctx context.Context) (List, error) {
	out := List{Registrations: []Registration{}}
	out.ByStatus = map[string]int{StatusPending: 0}
	for _, st := range a.await.statuses() {
		out.ByStatus[st] = 0
	}
	rows, err := a.ob.DB().QueryContext(ctx, "SELECT status, count(*) FROM users_registrations GROUP BY status")
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return out, err
		}
		out.Add(st, n, st != StatusPending)
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	rows.Close()
	rows, err = a.ob.DB().QueryContext(ctx, store.Q(a.ob, `SELECT user_id, name, email, status, registered_at FROM users_registrations
		ORDER BY registered_at DESC, user_id LIMIT ?`), recentLimit)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var reg Registration
		var at int64
		if err := rows.Scan(&reg.UserID, &reg.Name, &reg.Email, &reg.Status, &at); err != nil {
			return out, err
		}
		reg.RegisteredAt, reg.Links = time.UnixMicro(at).UTC(), Links{Self: userPath(reg.UserID)}
		out.Registrations = append(out.Registrations, reg)
	}
	return out, rows.Err()
}

// get serves one user.
func (a *api) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if msg := checkID(id); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	var u User
	var created int64
	var status sql.NullString
	err := a.ob.DB().QueryRowContext(r.Context(), store.Q(a.ob, `SELECT u.id, u.name, u.email, u.created_at, g.status FROM users u
		LEFT JOIN users_registrations g ON g.user_id = u.id WHERE u.id = ?`), id).
		Scan(&u.ID, &u.Name, &u.Email, &created, &status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no user %s", id))
		return
	case err != nil:
		a.log.Error("users: read "+id, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the user cannot be read right now; try again")
		return
	}
	u.CreatedAt = time.UnixMicro(created).UTC()
	u.Links.Self = userPath(u.ID)
	if status.Valid {
		u.WelcomeMail = &OutcomeEvent{Status: status.String}
	}
	httpjson.WriteJSON(w, http.StatusOK, u)
}

// delete removes a user; the removal and its user_deleted event commit in
// one transaction. Deleting a user that does not exist publishes nothing.
func (a *api) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if msg := checkID(id); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	ctx := outbox.WithOutbox(r.Context(), a.ob)
	found, err := func() (bool, error) {
		tx, err := a.ob.DB().BeginTx(ctx, nil)
		if err != nil {
			return false, err
		}
		defer tx.Rollback()
		res, err := tx.ExecContext(ctx, store.Q(a.ob, `DELETE FROM users WHERE id = ?`), id)
		if err != nil {
			return false, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return false, err
		}
		if err := outbox.PublishTx(ctx, tx, Deleted, DeletedV1{UserID: id, DeletedAt: time.Now().UTC()}); err != nil {
			return false, err
		}
		return true, tx.Commit()
	}()
	switch {
	case err != nil:
		a.log.Error("users: could not delete "+id, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the user could not be deleted right now; try again")
	case !found:
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no user %s", id))
	default:
		a.log.Info("users: deleted " + id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// validate checks a registration and returns the name and email to store.
// It reports every problem at once.
func validate(req registerRequest) (name, email string, err error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	name = strings.TrimSpace(req.Name)
	switch {
	case name == "":
		bad("name is required")
	case utf8.RuneCountInString(name) > maxNameLen:
		bad("name must be at most %d characters", maxNameLen)
	case strings.ContainsFunc(name, unicode.IsControl):
		bad("name must not contain control characters")
	}
	email = strings.TrimSpace(req.Email)
	switch {
	case email == "":
		bad("email is required")
	case len(email) > maxEmailLen:
		bad("email must be at most %d characters", maxEmailLen)
	default:
		addr, perr := mail.ParseAddress(email)
		local, domain, _ := strings.Cut(email, "@")
		switch {
		case perr != nil || addr.Name != "" || addr.Address != email:
			bad("email %q is not an address such as ada@example.com", email)
		case local == "" || !strings.Contains(domain, ".") || strings.ContainsAny(email, " <>"):
			bad("email %q is not an address such as ada@example.com", email)
		default:
			// Domains are case-insensitive; the local part, strictly, is not.
			email = local + "@" + strings.ToLower(domain)
		}
	}
	if len(problems) > 0 {
		return "", "", errors.New(strings.Join(problems, "; "))
	}
	return name, email, nil
}

// preferWait reads the "wait" preference of RFC 7240 from the Prefer
// headers: how many seconds the client will wait for the outcome. 0 means
// answer at once. Other preferences (respond-async, …) are ignored as the
// RFC asks; a wait that is not a whole number of seconds from 1 to max is
// an error rather than silently ignored, so a typo does not turn a waiting
// client into a polling one.
func preferWait(h http.Header, max time.Duration) (time.Duration, error) {
	for _, v := range h.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			token, _, _ := strings.Cut(pref, ";")
			key, val, hasVal := strings.Cut(strings.TrimSpace(token), "=")
			if !strings.EqualFold(strings.TrimSpace(key), "wait") {
				continue
			}
			val = strings.Trim(strings.TrimSpace(val), `"`)
			n, err := strconv.Atoi(val)
			if !hasVal || err != nil || n < 1 || time.Duration(n)*time.Second > max {
				return 0, fmt.Errorf("Prefer: wait=%s: give the seconds to wait for the welcome mail, from 1 to %d, as in Prefer: wait=10", val, int(max/time.Second))
			}
			return time.Duration(n) * time.Second, nil
		}
	}
	return 0, nil
}

// checkID returns a sentence for the client when id cannot be a user id.
func checkID(id string) string {
	if len(id) != idLen || strings.IndexFunc(id, func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) >= 0 {
		return fmt.Sprintf("%q is not a user id: ids are %d lower-case hex digits, as in the Location of POST /users", truncate(id, 40), idLen)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// newUserID returns 16 random hex digits.
func newUserID() string {
	b := make([]byte, idLen/2)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return hex.EncodeToString(b)
}
