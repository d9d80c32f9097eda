package store

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

func TestStateDigestKnownAnswer(t *testing.T) {
	revoked := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		orgs []Org
		want string
	}{
		{"empty", nil, "3363164a3396062c778745d6e26495a18a2a9d7ceef677440925d9c27accb9ee"},
		{"one org", []Org{{ID: "acme", RequireSignatures: true, UpdatedAt: revoked,
			Trusted: []TrustedKey{{Fingerprint: "ab", Algorithm: "ed25519", PublicKey: []byte{1, 2}, TrustedAt: revoked}},
			Grants:  []Grant{{Child: "c", GrantedAt: revoked, RevokedAt: &revoked}}}},
			"6c1367a7fe3641c393863287aed2f6a12116493770b15a22d33c3b08cbd89b49"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(EncodeState(tt.orgs, nil, nil)); got != tt.want {
				t.Fatalf("digest %s, want %s", got, tt.want)
			}
		})
	}
}

// TestStateDigestCovers: every change that decides what verifies or who
// signs changes the digest; times that decide nothing and the order things
// are listed in do not.
func TestStateDigestCovers(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	base := func() ([]Org, []Key, *Key) {
		orgs := []Org{
			{ID: "a", UpdatedAt: t0, Trusted: []TrustedKey{{Fingerprint: "f1", Algorithm: "ed25519", PublicKey: []byte{1}, TrustedAt: t0}, {Fingerprint: "f2", Algorithm: "ed25519", PublicKey: []byte{2}, TrustedAt: t0}},
				Grants: []Grant{{Child: "b", GrantedAt: t0}}},
			{ID: "b", UpdatedAt: t0},
		}
		keys := []Key{{Name: "k", Algorithm: "ed25519", CreatedAt: t0, Versions: []KeyVersion{{Version: 1, CKAID: []byte{9}, PublicKey: []byte{1}, Fingerprint: "f1", State: KeyActive, CreatedAt: t0}}}}
		ak := &Key{Name: "signerd-audit", Algorithm: "ecdsa-p256", Versions: []KeyVersion{{Version: 1, CKAID: []byte{8}, PublicKey: []byte{7}, Fingerprint: "fa", State: KeyActive}}}
		return orgs, keys, ak
	}
	o, k, a := base()
	want := EncodeState(o, k, a)
	changes := []struct {
		name    string
		edit    func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key)
		changes bool
	}{
		{"a trusted key added", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			o[1].Trusted = append(o[1].Trusted, TrustedKey{Fingerprint: "evil", Algorithm: "ed25519", PublicKey: []byte{6}})
			return o, k, a
		}, true},
		{"trust removed", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) { o[0].Trusted[0].RemovedAt = &t1; return o, k, a }, true},
		{"public key swapped", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			o[0].Trusted[0].PublicKey = []byte{5}
			return o, k, a
		}, true},
		{"policy", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) { o[1].RequireSignatures = true; return o, k, a }, true},
		{"grant revoked", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) { o[0].Grants[0].RevokedAt = &t1; return o, k, a }, true},
		{"grant added", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			o[1].Grants = append(o[1].Grants, Grant{Child: "a", GrantedAt: t1})
			return o, k, a
		}, true},
		{"org added", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			return append(o, Org{ID: "c", UpdatedAt: t1}), k, a
		}, true},
		{"key revoked", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			k[0].Versions[0].State, k[0].Versions[0].RevokedAt, k[0].Versions[0].RevocationReason = KeyRevoked, &t1, ReasonSuperseded
			return o, k, a
		}, true},
		{"revocation backdated", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			k[0].Versions[0].State, k[0].Versions[0].RevokedAt, k[0].Versions[0].RevocationReason = KeyRevoked, &t0, ReasonSuperseded
			return o, k, a
		}, true},
		{"CKA_ID changed", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			k[0].Versions[0].CKAID = []byte{3}
			return o, k, a
		}, true},
		{"audit key replaced", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			a.Versions[0].PublicKey = []byte{4}
			return o, k, a
		}, true},
		{"audit key gone", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) { return o, k, nil }, true},
		{"times that decide nothing", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			o[0].UpdatedAt, o[0].Trusted[0].TrustedAt, o[0].Grants[0].GrantedAt, k[0].CreatedAt = t1, t1, t1, t1
			return o, k, a
		}, false},
		{"listing order", func(o []Org, k []Key, a *Key) ([]Org, []Key, *Key) {
			o[0].Trusted[0], o[0].Trusted[1] = o[0].Trusted[1], o[0].Trusted[0]
			return []Org{o[1], o[0]}, k, a
		}, false},
	}
	for _, tt := range changes {
		t.Run(tt.name, func(t *testing.T) {
			o, k, a := tt.edit(base())
			if got := !bytes.Equal(EncodeState(o, k, a), want); got != tt.changes {
				t.Fatalf("digest changed = %v, want %v", got, tt.changes)
			}
		})
	}
}
