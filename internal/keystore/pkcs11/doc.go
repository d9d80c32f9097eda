// Package pkcs11 is signerd's only code that talks PKCS#11: it implements
// keystore.KeyStore on a token (an HSM; SoftHSM2 in tests and `make run`).
//
// Both algorithms are done directly on github.com/miekg/pkcs11: ECDSA P-256
// with CKM_EC_KEY_PAIR_GEN and CKM_ECDSA, Ed25519 with CKM_EDDSA (PKCS#11
// 3.0 identifiers defined here, since miekg's headers predate them), with
// one bounded session pool for both. crypto11 is not used: it loads and
// initialises the library through a context of its own, which is a second
// library instance on modules that keep state per function list.
//
// # One library, initialised once
//
// PKCS#11 state (initialisation, login, object handles) belongs to what
// C_GetFunctionList returned, and modules differ in what a second
// C_GetFunctionList or C_Initialize in one process means: SoftHSM2 shares
// one state and answers CKR_CRYPTOKI_ALREADY_INITIALIZED; p11-kit's client
// (p11-kit-client.so) gives each function list a state and an RPC
// connection of its own and counts C_Initialize calls; forwarding modules
// such as OpenSC's pkcs11-spy pass the call to the module behind them. So
// signerd relies on none of these behaviours:
//
//   - A process holds one miekg context per library (by canonical path,
//     symlinks resolved): one dlopen, one C_GetFunctionList, one
//     C_Initialize. Every KeyStore on the library and every raw use of it
//     (InitToken, the inspection helpers) shares that context and counts
//     itself as a user; the last user to release it calls C_Finalize, once,
//     and unloads it. A later user loads and initialises it afresh.
//   - C_Initialize is called with CKF_OS_LOCKING_OK and no mutex callbacks,
//     since calls come from many goroutines at once. A module that cannot
//     lock (CKR_CANT_LOCK) is refused with a message saying so, and one that
//     something else in the process initialised first
//     (CKR_CRYPTOKI_ALREADY_INITIALIZED) is refused too, since we could not
//     know when that user finalizes it.
//   - A per-module mutex serialises loading, initialising, finalizing,
//     C_Login and C_Logout.
//   - Login is per application, so we log in once per token per process.
//     Several KeyStores on one token share that login through a reference
//     count; the last Close logs out, before its sessions close and before
//     the library is finalized.
//   - CKR_USER_ALREADY_LOGGED_IN does not prove a PIN: a second Open of a
//     token this process is already logged in to compares its PIN with a
//     salted SHA-256 of the PIN that succeeded, and is refused on a
//     difference without asking the token.
//
// # Capabilities
//
// Open reads the token's mechanisms and limits once and logs them
// (capabilities.go). An algorithm whose mechanisms the token does not list
// is refused up front with a message naming the missing mechanism and the
// algorithm to use instead; a module without the listing functions
// (CKR_FUNCTION_NOT_SUPPORTED) is assumed to offer everything. The session
// pool is capped at the token's ulMaxSessionCount and ulMaxRwSessionCount,
// and shrinks by one whenever the token answers CKR_SESSION_COUNT while
// other sessions of ours are open (a caller then waits for one of them).
// Keys with CKA_ALWAYS_AUTHENTICATE get a CKU_CONTEXT_SPECIFIC login after
// each C_SignInit (signinit.go). The token found is identified by label,
// serial, model and manufacturer (any of them may select it) and shown to
// Config.CheckToken before the PIN is offered.
//
// # Recovery
//
// Every token operation runs in a loop that repairs by error class and
// retries, at most once per class: a closed or invalid session is discarded
// with every idle session of its generation, then login is checked; "not
// logged in" logs in again; an invalid object or key handle drops the cached
// handle and the key is looked up again, with its public key checked against
// the expected one. Device errors, a removed token and an
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
