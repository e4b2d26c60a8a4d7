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
	"github.com/troupe-go/troupe/examples/usermgmt/internal/httpx"
	"github.com/troupe-go/troupe/examples/usermgmt/internal/store"
	"github.com/troupe-go/troupe/outbox"
)

// Limits of what POST /users accepts.
const (
	maxNameLen  = 100
	maxEmailLen = 254 // RFC 5321's limit for a path
	idLen       = 16  // hex digits of a user id
)

const registerExample = `{"name":"Ada","email":"ada@example.com"}`

// User is a user as the API shows it.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	// WelcomeMail is in the answers of POST /users only.
	WelcomeMail *OutcomeEvent `json:"welcome_mail,omitempty"`
	Links       Links         `json:"links"`
}

// Links are the URLs of a resource.
type Links struct {
	Self string `json:"self"`
}

func userPath(id string) string { return "/users/" + id }

// api serves the user service's routes.
type api struct {
	log     *slog.Logger
	db      *sql.DB
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
	existing, err := a.insert(ctx, u)
	switch {
	case err != nil:
		a.log.Error("users: could not register "+u.ID, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "the user could not be registered right now; try again")
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

// insert writes u and its user_registered event in one transaction. When
// the email belongs to another user it writes nothing and returns that
// user's id.
func (a *api) insert(ctx context.Context, u User) (existing string, err error) {
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, store.Q(a.ob, `INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (email) DO NOTHING`), u.ID, u.Name, u.Email, u.CreatedAt.UnixMicro())
	if err != nil {
		return "", err
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", err
	} else if n == 0 {
		err := tx.QueryRowContext(ctx, store.Q(a.ob, `SELECT id FROM users WHERE email = ?`), u.Email).Scan(&existing)
		return existing, err
	}
	ev := RegisteredV1{UserID: u.ID, Name: u.Name, Email: u.Email, RegisteredAt: u.CreatedAt}
	if err := outbox.PublishTx(ctx, tx, Registered, ev); err != nil {
		return "", err
	}
	return "", tx.Commit()
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
	err := a.db.QueryRowContext(r.Context(), store.Q(a.ob, `SELECT id, name, email, created_at FROM users WHERE id = ?`), id).
		Scan(&u.ID, &u.Name, &u.Email, &created)
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
		tx, err := a.db.BeginTx(ctx, nil)
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
