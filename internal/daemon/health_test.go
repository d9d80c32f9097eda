package daemon

import (
	"slices"
	"testing"
)

// TestReadiness: health is SERVING only while both the HSM and the store
// are up, each change is reported once, and after shutdown nothing brings
// SERVING back.
func TestReadiness(t *testing.T) {
	r := newReadiness()
	var got []bool
	r.notify(func(serving bool) { got = append(got, serving) })
	steps := []struct {
		name string
		do   func()
	}{
		{"HSM up", func() { r.setHSM(true) }},
		{"HSM up again", func() { r.setHSM(true) }},
		{"store down", func() { r.setStore(false) }},
		{"HSM down while the store is down", func() { r.setHSM(false) }},
		{"store up while the HSM is down", func() { r.setStore(true) }},
		{"HSM up", func() { r.setHSM(true) }},
		{"shutdown", r.shutdown},
		{"store down and up during the drain", func() { r.setStore(false); r.setStore(true) }},
	}
	for _, s := range steps {
		s.do()
	}
	want := []bool{false, true, false, true, false}
	if !slices.Equal(got, want) {
		t.Fatalf("reported %v, want %v", got, want)
	}
}
