package server

import (
	"runtime"
	"testing"
)

// TestTuneScheduler: twice the default Ps when GOMAXPROCS is unset; an
// operator's GOMAXPROCS is left as it is.
func TestTuneScheduler(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	tests := []struct {
		env  string
		want int // Ps after the call
		ret  int
	}{
		{env: "", want: 2 * orig, ret: 2 * orig},
		{env: "3", want: orig, ret: 0},
	}
	for _, tt := range tests {
		runtime.GOMAXPROCS(orig)
		// An empty GOMAXPROCS is unset for the runtime and for
		// TuneScheduler alike.
		t.Setenv("GOMAXPROCS", tt.env)
		if got := TuneScheduler(); got != tt.ret {
			t.Errorf("GOMAXPROCS=%q: TuneScheduler() = %d, want %d", tt.env, got, tt.ret)
		}
		if got := runtime.GOMAXPROCS(0); got != tt.want {
			t.Errorf("GOMAXPROCS=%q: %d Ps, want %d", tt.env, got, tt.want)
		}
	}
}
