package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/signerd/signerd/internal/errdefs"
	"github.com/signerd/signerd/internal/keystore/pkcs11"
	"github.com/signerd/signerd/internal/store"
)

// pinToken returns the check the key store runs on the token it found,
// before offering it the PIN: the first start records the token's serial,
// model and manufacturer in the store (audited as "hsm.token.record");
// later starts, and reconnections, refuse any other token, even one with
// the same label. A store that cannot record it is refused: signing keys
// must not silently move to another token.
func pinToken(st store.Store, log *slog.Logger) func(context.Context, pkcs11.TokenIdentity) error {
	return func(ctx context.Context, id pkcs11.TokenIdentity) error {
		p, ok := st.(store.TokenPinner)
		if !ok {
			return fmt.Errorf("the store cannot record which HSM token holds the keys: %w", errdefs.ErrFailedPrecondition)
		}
		t := store.HSMToken{Label: id.Label, Serial: id.Serial, Model: id.Model, Manufacturer: id.Manufacturer}
		ev := store.AuditEvent{Time: time.Now(), Caller: "signerd", Operation: "hsm.token.record", Outcome: "ok",
			Detail: fmt.Sprintf("label=%q serial=%q model=%q manufacturer=%q", t.Label, t.Serial, t.Model, t.Manufacturer)}
		recorded, created, err := p.PinToken(ctx, t, ev)
		if err != nil {
			return fmt.Errorf("record the HSM token in the store: %w", err)
		}
		if created {
			log.Info("HSM token recorded in the store; later starts accept only this token",
				slog.String("label", t.Label), slog.String("serial", t.Serial), slog.String("model", t.Model), slog.String("manufacturer", t.Manufacturer))
			return nil
		}
		if recorded.Serial != t.Serial || recorded.Model != t.Model || recorded.Manufacturer != t.Manufacturer {
			return fmt.Errorf("this is not the token the store's keys were made in: found %s, the store records %s; "+
				"point signerd at the recorded token (--pkcs11-uri 'pkcs11:serial=%s'), or use another store for this one: %w",
				id, pkcs11.TokenIdentity{Label: recorded.Label, Serial: recorded.Serial, Model: recorded.Model, Manufacturer: recorded.Manufacturer},
				recorded.Serial, errdefs.ErrFailedPrecondition)
		}
		return nil
	}
}
