package skill

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/signerd/signerd/internal/errdefs"
)

// PinStatus is the outcome of a TOFU check (spec §10.1).
type PinStatus string

// Pin statuses. Changed is never reported in a valid result: it fails
// verification with key_pin_mismatch.
const (
	PinFirstUse PinStatus = "first_use"
	PinPinned   PinStatus = "pinned"
	PinChanged  PinStatus = "changed"
)

// PinStore is the trust-on-first-use store keyed by "<tool_id>@<domain>"
// (spec §10). It is safe for concurrent use.
//
// The Go/Python/JS shape holds one fingerprint per key. The Rust shape
// holds a list (rotation); a key matching any listed fingerprint is
// pinned. Encode writes the flat Go/Python/JS map, keeping for a
// multi-key entry only the last listed key, Rust's most recently added:
// dropping older keys can only make the store stricter.
type PinStore struct {
	mu   sync.Mutex
	pins map[string][]string
}

// NewPinStore returns an empty store.
func NewPinStore() *PinStore { return &PinStore{pins: map[string][]string{}} }

// rustPinnedTool is Rust's PinnedTool (spec §10.2).
type rustPinnedTool struct {
	ToolID     string `json:"tool_id"`
	Domain     string `json:"domain"`
	PinnedKeys []struct {
		Fingerprint string `json:"fingerprint"`
		FirstSeen   string `json:"first_seen"`
		LastSeen    string `json:"last_seen"`
		TrustLevel  string `json:"trust_level"`
	} `json:"pinned_keys"`
}

// ParsePinStore reads either the flat map {"tool@domain": "sha256:…"}
// written by Go, Python and JS, or Rust's array of PinnedTool. Anything
// else, including an empty file, is an error: a pin store that silently
// read as empty would re-trust every key.
func ParsePinStore(data []byte) (*PinStore, error) {
	t := bytes.TrimLeft(data, " \t\r\n")
	s := NewPinStore()
	switch {
	case len(t) > 0 && t[0] == '{':
		var flat map[string]string
		if err := json.Unmarshal(data, &flat); err != nil {
			return nil, fmt.Errorf("pin store: %w: %w", errdefs.ErrInvalidArgument, err)
		}
		for k, fp := range flat {
			if fp == "" {
				return nil, fmt.Errorf("pin store: %q has an empty fingerprint: %w", k, errdefs.ErrInvalidArgument)
			}
			s.pins[k] = []string{fp}
		}
	case len(t) > 0 && t[0] == '[':
		var tools []rustPinnedTool
		if err := json.Unmarshal(data, &tools); err != nil {
			return nil, fmt.Errorf("pin store: %w: %w", errdefs.ErrInvalidArgument, err)
		}
		for i, pt := range tools {
			k := pinKey(pt.ToolID, pt.Domain)
			for _, pk := range pt.PinnedKeys {
				if pk.Fingerprint == "" {
					return nil, fmt.Errorf("pin store: entry %d (%q) has an empty fingerprint: %w", i, k, errdefs.ErrInvalidArgument)
				}
				if !slices.ContainsFunc(s.pins[k], func(x string) bool { return strings.EqualFold(x, pk.Fingerprint) }) {
					s.pins[k] = append(s.pins[k], pk.Fingerprint)
				}
			}
		}
	default:
		return nil, fmt.Errorf("pin store: want a JSON object or array: %w", errdefs.ErrInvalidArgument)
	}
	return s, nil
}

// Encode writes the flat map exactly as upstream Go's ToJSON: compact JSON,
// keys sorted, no trailing newline.
func (s *PinStore) Encode() ([]byte, error) {
	s.mu.Lock()
	flat := make(map[string]string, len(s.pins))
	for k, fps := range s.pins {
		if len(fps) > 0 {
			flat[k] = fps[len(fps)-1]
		}
	}
	s.mu.Unlock()
	out, err := json.Marshal(flat)
	if err != nil {
		return nil, fmt.Errorf("pin store: %w", err)
	}
	return out, nil
}

// Check reports the TOFU status of fingerprint for toolID@domain without
// changing the store. Fingerprints compare case-insensitively.
func (s *PinStore) Check(toolID, domain, fingerprint string) PinStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkLocked(pinKey(toolID, domain), fingerprint)
}

// CheckAndPin is upstream's CheckAndPin: an absent key is pinned and
// reported first_use, an equal one pinned, a different one changed (and
// not stored).
func (s *PinStore) CheckAndPin(toolID, domain, fingerprint string) PinStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := pinKey(toolID, domain)
	st := s.checkLocked(k, fingerprint)
	if st == PinFirstUse {
		s.pins[k] = []string{fingerprint}
	}
	return st
}

// Pinned returns the fingerprints pinned for toolID@domain (the last is the
// one Encode keeps).
func (s *PinStore) Pinned(toolID, domain string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pins[pinKey(toolID, domain)])
}

// Set replaces the pin of toolID@domain with fingerprint. Rotation is a
// deliberate operator action upstream too (spec §10.1: no automatic
// re-pin).
func (s *PinStore) Set(toolID, domain, fingerprint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins[pinKey(toolID, domain)] = []string{fingerprint}
}

// Remove forgets toolID@domain, so its next verification is a first use.
func (s *PinStore) Remove(toolID, domain string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pins, pinKey(toolID, domain))
}

// Len is the number of pinned tool@domain keys.
func (s *PinStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pins)
}

func (s *PinStore) checkLocked(k, fingerprint string) PinStatus {
	fps, ok := s.pins[k]
	if !ok || len(fps) == 0 {
		return PinFirstUse
	}
	for _, fp := range fps {
		if strings.EqualFold(fp, fingerprint) {
			return PinPinned
		}
	}
	return PinChanged
}

// pinKey is upstream's "<tool_id>@<domain>".
func pinKey(toolID, domain string) string { return toolID + "@" + domain }
