// Package pkcs11 is signerd's only code that talks PKCS#11: it implements
// keystore.KeyStore on a token (an HSM; SoftHSM2 in tests and `make run`).
//
// ECDSA P-256 goes through crypto11 (github.com/ThalesGroup/crypto11), which
// generates, finds and signs with its own session pool. crypto11 v1 has no
// Ed25519, so Ed25519 (CKM_EDDSA) and key import are done directly on
// github.com/miekg/pkcs11 with a bounded session pool of our own.
//
// # One library, two users
//
// crypto11 and our miekg context load the same library into the process, and
// PKCS#11 state (initialisation, login, object handles) belongs to the
// process, not to a *pkcs11.Ctx. The rules that follow from it:
//
//   - crypto11 owns C_Initialize/C_Finalize: it initialises on its first
//     Configure for a path and finalizes when its last Context closes. It
//     treats CKR_CRYPTOKI_ALREADY_INITIALIZED as fatal, so Open configures
//     crypto11 first and our own context then expects exactly that code and
//     never finalizes. Module paths are canonicalised (symlinks resolved) so
//     two spellings of one library cannot initialise it twice.
//   - Code that needs the library without a KeyStore (InitToken, the
//     inspection helpers) runs under a per-module mutex that Open and Close
//     also take, so it either owns initialisation for its whole run (and
//     finalizes) or finds crypto11 holding it (and leaves it alone).
//   - Login is per application, so we log in once per token per process (the
//     crypto11 Context is configured with LoginNotSupported and never logs in
//     itself). Several KeyStores on one token share that login through a
//     reference count; the last Close logs out, before any session closes
//     and before crypto11 finalizes.
//   - CKR_USER_ALREADY_LOGGED_IN does not prove a PIN: a second Open of a
//     token this process is already logged in to compares its PIN with a
//     salted SHA-256 of the PIN that succeeded, and is refused on a
//     difference without asking the token.
//
// # Recovery
//
// Every token operation runs in a loop that repairs by error class and
// retries, at most once per class: a closed or invalid session is discarded
// with every idle session of its generation (and the crypto11 Context is
// rebuilt, since crypto11 returns broken sessions to its pool), then login is
// checked; "not logged in" logs in again; an invalid object or key handle
// drops the cached handle and the key is looked up again, with its public key
// checked against the expected one. Device errors, a removed token and an
// uninitialised library are reported as errdefs.ErrUnavailable with reason
// HSM_UNAVAILABLE. A wrong PIN is never retried: when logging in again
// after a lost login fails on the PIN (it was changed under us), the process
// stops offering it, since each refusal counts towards locking the token.
//
// Every lookup of a key (a cache miss) compares the token's public key with
// the recorded one and has the private key sign a random challenge that must
// verify under it, so neither a swapped public object nor a swapped private
// object can redirect signatures. Mismatches are
// errdefs.ErrFailedPrecondition with reason KEY_MISMATCH and are not cached.
//
// # Secrets
//
// The PIN and key material never appear in errors or logs. The PIN is held in
// memory (a Go string, which cannot be wiped) for as long as the KeyStore is
// open, because recovering from a lost login needs it.
package pkcs11
