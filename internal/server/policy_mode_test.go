package server

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLoadPolicyFileMode: a policy file others may write, or that belongs
// to a user other than root and signerd's, is refused: whoever can change
// it decides who may sign at the next reload.
func TestLoadPolicyFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(path, []byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" to load
	}{
		{0o600, ""},
		{0o644, ""},
		{0o664, "writable by group or others"},
		{0o646, "writable by group or others"},
	} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPolicy(path)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("mode %04o: %v, want %q", tc.mode, err, tc.want)
		}
	}
	if os.Geteuid() != 0 {
		return // only root can give the file away
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
		t.Errorf("a policy file of uid 12345: %v, want a refusal", err)
	}
}

// TestLoadPolicyFileACL: an ACL entry that lets another user write the
// file is refused too, with no ACL code of our own. With an extended ACL
// the mode's group bits are the ACL's mask, and an entry's write grant is
// effective only if the mask allows writing: so the group-write check
// covers every named user and group.
func TestLoadPolicyFileACL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(path, []byte(`{"version": 1, "rules": [{"uids": [0], "role": "admin"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// system.posix_acl_access (linux/posix_acl_xattr.h): version 2, then
	// (tag, perm, id) entries sorted by tag: user::rw-, user:65534:rw-,
	// group::---, mask::MASK, other::---.
	acl := func(mask uint16) []byte {
		b := binary.LittleEndian.AppendUint32(nil, 2)
		for _, e := range []struct {
			tag, perm uint16
			id        uint32
		}{{0x01, 6, ^uint32(0)}, {0x02, 6, 65534}, {0x04, 0, ^uint32(0)}, {0x10, mask, ^uint32(0)}, {0x20, 0, ^uint32(0)}} {
			b = binary.LittleEndian.AppendUint16(b, e.tag)
			b = binary.LittleEndian.AppendUint16(b, e.perm)
			b = binary.LittleEndian.AppendUint32(b, e.id)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		mask uint16
		want string // "" to load
	}{
		{"user 65534 may write", 6, "writable by group or others"},
		{"user 65534's write masked off", 4, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := unix.Setxattr(path, "system.posix_acl_access", acl(tc.mask), 0); err != nil {
				if errors.Is(err, unix.EOPNOTSUPP) {
					t.Skipf("the file system of %s has no POSIX ACLs: %v", path, err)
				}
				t.Fatal(err)
			}
			_, err := LoadPolicy(path)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}
