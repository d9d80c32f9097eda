package server

import (
	"encoding/hex"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	signerv1 "github.com/signerd/signerd/gen/signer/v1"
	"github.com/signerd/signerd/internal/keystore"
	"github.com/signerd/signerd/internal/service"
	"github.com/signerd/signerd/internal/store"
)

func algorithmToPB(a string) signerv1.Algorithm {
	switch keystore.Algorithm(a) {
	case keystore.Ed25519:
		return signerv1.Algorithm_ALGORITHM_ED25519
	case keystore.ECDSAP256:
		return signerv1.Algorithm_ALGORITHM_ECDSA_P256
	}
	return signerv1.Algorithm_ALGORITHM_UNSPECIFIED
}

func algorithmFromPB(a signerv1.Algorithm) keystore.Algorithm {
	switch a {
	case signerv1.Algorithm_ALGORITHM_ED25519:
		return keystore.Ed25519
	case signerv1.Algorithm_ALGORITHM_ECDSA_P256:
		return keystore.ECDSAP256
	}
	return ""
}

func revocationToPB(r store.RevocationReason) signerv1.RevocationReason {
	switch r {
	case store.ReasonKeyCompromise:
		return signerv1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE
	case store.ReasonSuperseded:
		return signerv1.RevocationReason_REVOCATION_REASON_SUPERSEDED
	case store.ReasonCessationOfOperation:
		return signerv1.RevocationReason_REVOCATION_REASON_CESSATION_OF_OPERATION
	case store.ReasonPrivilegeWithdrawn:
		return signerv1.RevocationReason_REVOCATION_REASON_PRIVILEGE_WITHDRAWN
	}
	return signerv1.RevocationReason_REVOCATION_REASON_UNSPECIFIED
}

func timeToPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timePtrToPB(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func keyToPB(k store.Key) *signerv1.Key {
	out := &signerv1.Key{
		Name:      k.Name,
		Org:       k.Org,
		Algorithm: algorithmToPB(k.Algorithm),
		CreatedAt: timeToPB(k.CreatedAt),
	}
	for _, v := range k.Versions {
		st := signerv1.KeyState_KEY_STATE_ACTIVE
		if v.State == store.KeyRevoked {
			st = signerv1.KeyState_KEY_STATE_REVOKED
		}
		out.Versions = append(out.Versions, &signerv1.KeyVersion{
			Version:          v.Version,
			Fingerprint:      v.Fingerprint,
			State:            st,
			CreatedAt:        timeToPB(v.CreatedAt),
			RevokedAt:        timePtrToPB(v.RevokedAt),
			RevocationReason: revocationToPB(v.RevocationReason),
			PublicKeyPem:     service.PublicKeyPEM(v.PublicKey),
			CkaId:            hex.EncodeToString(v.CKAID),
		})
	}
	return out
}

func trustedToPB(tk store.TrustedKey, via string) *signerv1.TrustedKey {
	return &signerv1.TrustedKey{
		Fingerprint:  tk.Fingerprint,
		Algorithm:    algorithmToPB(tk.Algorithm),
		KeyName:      tk.KeyName,
		PublicKeyPem: service.PublicKeyPEM(tk.PublicKey),
		TrustedAt:    timeToPB(tk.TrustedAt),
		ViaOrg:       via,
	}
}
