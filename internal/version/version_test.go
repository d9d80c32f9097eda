package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/signerd/signerd", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	noVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/signerd/signerd", Version: "(devel)"}}
	tagged := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/signerd/signerd", Version: "v1.2.3"}}
	tests := []struct {
		name                     string
		bi                       *debug.BuildInfo
		version, revision, built string
		want                     Info
	}{
		{"toolchain recorded the revision; make build the time", vcs("abc", "false"), "", "def", "2026-12-03T10:00:00Z",
			Info{Module: "github.com/signerd/signerd", Version: "(devel)", Revision: "abc", BuildTime: "2026-12-03T10:00:00Z", GoVersion: "go1.26.8"}},
		{"modified tree", vcs("abc", "true"), "", "", "",
			Info{Module: "github.com/signerd/signerd", Version: "(devel)", Revision: "abc", Modified: true, GoVersion: "go1.26.8"}},
		{"-buildvcs=false: all stamped", noVCS, "v0.9.0-3-gabc", "abc-dirty", "2026-12-03T10:00:00Z",
			Info{Module: "github.com/signerd/signerd", Version: "v0.9.0-3-gabc", Revision: "abc", Modified: true, BuildTime: "2026-12-03T10:00:00Z", GoVersion: "go1.26.8"}},
		{"module version wins over a stamped tag", tagged, "v0.0.1", "", "",
			Info{Module: "github.com/signerd/signerd", Version: "v1.2.3", GoVersion: "go1.26.8"}},
		{"nothing known", noVCS, "", "", "",
			Info{Module: "github.com/signerd/signerd", Version: "(devel)", GoVersion: "go1.26.8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fromBuildInfo(tt.bi, tt.version, tt.revision, tt.built); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "(devel)", Revision: "abc", Modified: true, BuildTime: "2026-12-03T10:00:00Z", GoVersion: "go1.26.8"}
	if got, want := i.String(), "(devel), revision abc (modified), built 2026-12-03T10:00:00Z, go1.26.8"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if s := (Info{Version: "(devel)", GoVersion: "go1.26.8"}).String(); !strings.Contains(s, "revision unknown, built unknown") {
		t.Errorf("unknowns not said: %q", s)
	}
}
