// Package coupons is the extension of the user-management example: a
// coupon service that gives every new user a welcome coupon. It was added
// as one more subscriber of user_registered (and of user_deleted, to revoke
// the coupon) without a line changed in the user service, which neither
// knows nor cares who listens.
//
//	GET /coupons/{user_id}   the user's welcome coupon
//
// Each event is handled through an inbox (outbox.Subscribe), so a
// redelivered user_registered issues no second coupon, and [Issued] is
// written in the same transaction as the coupon. The two topics have no
// order between them: when user_deleted is handled first, the service
// keeps a revoked entry, and the late user_registered issues nothing.
package coupons

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/troupe-go/troupe"
	"github.com/troupe-go/troupe/examples/internal/httpjson"
	"github.com/troupe-go/troupe/examples/internal/store"
	"github.com/troupe-go/troupe/examples/usermgmt/users"
	"github.com/troupe-go/troupe/outbox"
)

// ServiceName is the coupon service's name in the app and on --services.
const ServiceName = "coupons"

// Welcome coupon terms.
const (
	PercentOff = 10
	Validity   = 30 * 24 * time.Hour
)

// Issued is published once per user who got a welcome coupon.
var Issued = troupe.NewTopic[IssuedV1]("coupon_issued", 1)

// IssuedV1 is the data of an [Issued] event, version 1.
type IssuedV1 struct {
	UserID     string    `json:"user_id"`
	Code       string    `json:"code"`
	PercentOff int       `json:"percent_off"`
	ValidUntil time.Time `json:"valid_until"`
}

// Coupon is a user's welcome coupon as GET /coupons/{user_id} shows it.
type Coupon struct {
	UserID     string     `json:"user_id"`
	Code       string     `json:"code,omitempty"`
	PercentOff int        `json:"percent_off,omitempty"`
	ValidUntil *time.Time `json:"valid_until,omitempty"`
	// Status is "active" or "revoked" (the user was deleted).
	Status string `json:"status"`
}

// Register declares the coupon service on app. Its database, where it
// keeps the coupons table and its inbox (prefix "coupons"), opens with the
// app where the service runs. log gets one line per coupon issued or
// revoked; nil means the app's logger.
func Register(app *troupe.App, db *store.DB, log *slog.Logger) *troupe.Service {
	if log == nil {
		log = app.Logger()
	}
	svc := app.Service(ServiceName).Publishes(Issued)
	ob := store.Outbox(app, db, ServiceName, `CREATE TABLE IF NOT EXISTS coupons (
		user_id     TEXT PRIMARY KEY,
		code        TEXT NOT NULL,
		percent_off INTEGER NOT NULL,
		valid_until BIGINT NOT NULL,
		revoked_at  BIGINT
	)`)
	c := &service{ob: ob, log: log}
	outbox.Subscribe(svc, users.Registered, "issue-welcome-coupon", ob, c.issue, troupe.Emits(Issued))
	outbox.Subscribe(svc, users.Deleted, "revoke-coupon", ob, c.revoke)
	routes(svc, c)
	return svc
}

// routes declares the service's routes; they are served only where the
// service runs.
func routes(svc *troupe.Service, c *service) {
	svc.HandleFunc("GET /coupons/{user}", c.get)
	svc.HandleFunc("/coupons/{user}", httpjson.Fallback("/coupons/{user_id}", "GET"))
}

type service struct {
	ob  *outbox.Outbox
	log *slog.Logger
}

// code derives the coupon code from the user id, so every attempt at one
// registration computes the same code.
func code(userID string) string {
	sum := sha256.Sum256([]byte("welcome-coupon\x00" + userID))
	return "WELCOME-" + strings.ToUpper(hex.EncodeToString(sum[:4]))
}

func (c *service) issue(ctx context.Context, tx *sql.Tx, ev troupe.Event[users.RegisteredV1]) error {
	u := ev.Data
	cp := IssuedV1{UserID: u.UserID, Code: code(u.UserID), PercentOff: PercentOff, ValidUntil: u.RegisteredAt.Add(Validity).UTC()}
	res, err := tx.ExecContext(ctx, store.Q(c.ob, `INSERT INTO coupons (user_id, code, percent_off, valid_until) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO NOTHING`), cp.UserID, cp.Code, cp.PercentOff, cp.ValidUntil.UnixMicro())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		c.log.Info(fmt.Sprintf("coupons: user %s was deleted before the coupon was issued; none issued", u.UserID))
		return nil
	}
	c.log.Info(fmt.Sprintf("coupons: issued %s (%d%% off) to user %s", cp.Code, cp.PercentOff, u.UserID))
	return outbox.PublishTx(ctx, tx, Issued, cp)
}

func (c *service) revoke(ctx context.Context, tx *sql.Tx, ev troupe.Event[users.DeletedV1]) error {
	// Insert a revoked entry, or revoke the issued coupon: either way a
	// late user_registered finds the row and issues nothing.
	_, err := tx.ExecContext(ctx, store.Q(c.ob, `INSERT INTO coupons (user_id, code, percent_off, valid_until, revoked_at) VALUES (?, '', 0, 0, ?)
		ON CONFLICT (user_id) DO UPDATE SET revoked_at = excluded.revoked_at`), ev.Data.UserID, ev.Data.DeletedAt.UnixMicro())
	if err == nil {
		c.log.Info("coupons: revoked the coupon of user " + ev.Data.UserID)
	}
	return err
}

func (c *service) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("user")
	if len(id) == 0 || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		httpjson.WriteError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a user id", id))
		return
	}
	if msg := httpjson.CheckQuery(r.URL.Query()); msg != "" {
		httpjson.WriteError(w, http.StatusBadRequest, msg)
		return
	}
	var cp Coupon
	var until int64
	var revoked sql.NullInt64
	err := c.ob.DB().QueryRowContext(r.Context(), store.Q(c.ob, `SELECT user_id, code, percent_off, valid_until, revoked_at FROM coupons WHERE user_id = ?`), id).
		Scan(&cp.UserID, &cp.Code, &cp.PercentOff, &until, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		httpjson.WriteError(w, http.StatusNotFound, fmt.Sprintf("no coupon for user %s (yet)", id))
		return
	case err != nil:
		c.log.Error("coupons: read "+id, "err", err)
		httpjson.WriteError(w, http.StatusServiceUnavailable, "coupons cannot be read right now; try again")
		return
	}
	cp.Status = "active"
	if revoked.Valid {
		cp.Status = "revoked"
	}
	if until > 0 {
		t := time.UnixMicro(until).UTC()
		cp.ValidUntil = &t
	}
	httpjson.WriteJSON(w, http.StatusOK, cp)
}
