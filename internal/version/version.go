// Package version says which build of signerd is running: module version,
// VCS revision and build time. The Go toolchain records the first two in
// the binary (runtime/debug.ReadBuildInfo); what it cannot record — the
// build time, and the version and revision of a build made outside a Git
// checkout or with -buildvcs=false — `make build` stamps with -ldflags -X
// into the variables below.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped by `make build` (-ldflags "-X ..."); empty in a plain go build.
var (
	stampedVersion   string
	stampedRevision  string
	stampedBuildTime string
)

// Info is one build's identity. Empty fields are unknown.
type Info struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Modified  bool   `json:"modified"`   // built from a tree with uncommitted changes
	BuildTime string `json:"build_time"` // RFC 3339, UTC
	GoVersion string `json:"go_version"`
}

// Get returns this binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, stampedVersion, stampedRevision, stampedBuildTime)
}

// fromBuildInfo prefers what the toolchain recorded and fills the gaps
// from the stamped values.
func fromBuildInfo(bi *debug.BuildInfo, version, revision, buildTime string) Info {
	info := Info{GoVersion: runtime.Version(), BuildTime: buildTime}
	if bi != nil {
		info.Module, info.GoVersion = bi.Main.Path, bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = version
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	if info.Revision == "" {
		info.Revision, info.Modified = strings.CutSuffix(revision, "-dirty")
	}
	return info
}

// String is the one line `signerd --version` and `signctl version` print.
func (i Info) String() string {
	rev := i.Revision
	switch {
	case rev == "":
		rev = "unknown"
	case i.Modified:
		rev += " (modified)"
	}
	built := i.BuildTime
	if built == "" {
		built = "unknown"
	}
	return fmt.Sprintf("%s, revision %s, built %s, %s", i.Version, rev, built, i.GoVersion)
}
