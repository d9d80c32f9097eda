//go:build !amd64 || purego

package eccheck

import "filippo.io/nistec"

// mulAdders are the table multiplications to test: here only the
// generic one.
func mulAdders(raw []byte) map[string]func(acc *nistec.P256Point, u *[32]byte) *nistec.P256Point {
	return map[string]func(*nistec.P256Point, *[32]byte) *nistec.P256Point{"generic": genericMulAdd(raw)}
}
