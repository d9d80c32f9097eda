package server

import (
	"context"
	"sync/atomic"
)

// SwitchAuthorizer is the Authorizer the daemon serves with, so that a
// reload (SIGHUP) can put a newly read policy in force without a restart.
// Each call is decided entirely by the rules in force when it is checked.
type SwitchAuthorizer struct {
	cur atomic.Pointer[authorizerBox]
}

// authorizerBox lets atomic.Pointer hold Authorizers of different types.
type authorizerBox struct{ a Authorizer }

// NewSwitchAuthorizer starts with a.
func NewSwitchAuthorizer(a Authorizer) *SwitchAuthorizer {
	s := &SwitchAuthorizer{}
	s.Set(a)
	return s
}

// Set puts a in force for every call checked from now on.
func (s *SwitchAuthorizer) Set(a Authorizer) { s.cur.Store(&authorizerBox{a: a}) }

// Authorize implements Authorizer with the rules in force.
func (s *SwitchAuthorizer) Authorize(ctx context.Context, id Identity, method string, req any) error {
	return s.cur.Load().a.Authorize(ctx, id, method, req)
}
