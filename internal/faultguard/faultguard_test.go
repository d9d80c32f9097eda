package faultguard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/signerd/signerd/internal/errdefs"
)

func TestRun(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	want := errors.New("plain failure")
	for _, tt := range []struct {
		name  string
		fn    func() error
		check func(error) bool
	}{
		{"returns", func() error { return nil }, func(err error) bool { return err == nil }},
		{"fails", func() error { return want }, func(err error) bool { return err == want }},
		{"panics", func() error { panic("page 7: invalid page type") }, func(err error) bool { return errors.Is(err, errdefs.ErrInternal) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := Run(context.Background(), log, "work", tt.fn); !tt.check(err) {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}
