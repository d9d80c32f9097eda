/*
 * A test-only PKCS#11 module that forwards every call to another module
 * (SoftHSM2's library) and changes one behaviour at a time, chosen by the
 * environment, so that tests can show what real HSMs do and SoftHSM2 does
 * not. Built by the tests with the system C compiler; never installed.
 *
 *   SIGNERD_FWD_MODULE         the module to forward to (required)
 *   SIGNERD_FWD_LOG            append one line per C_Initialize, C_Finalize,
 *                              C_Login and refused C_OpenSession to this file
 *   SIGNERD_FWD_INIT           "count": answer CKR_OK to a second C_Initialize
 *                              and count, as p11-kit's client does (C_Finalize
 *                              forwards only the last); "needlock": refuse
 *                              (CKR_CANT_LOCK) unless CKF_OS_LOCKING_OK is set;
 *                              "cantlock": always CKR_CANT_LOCK
 *   SIGNERD_FWD_HIDE_EDDSA=1   no CKM_EDDSA nor CKM_EC_EDWARDS_KEY_PAIR_GEN
 *   SIGNERD_FWD_MAX_SESSIONS=N report ulMaxSessionCount = ulMaxRwSessionCount = N
 *   SIGNERD_FWD_SESSION_LIMIT=N C_OpenSession answers CKR_SESSION_COUNT while
 *                              N sessions are open
 *   SIGNERD_FWD_UNSUPPORTED    comma-separated functions answering
 *                              CKR_FUNCTION_NOT_SUPPORTED (C_GetMechanismList,
 *                              C_GetMechanismInfo)
 *   SIGNERD_FWD_ALWAYS_AUTH=1  private keys made through it carry
 *                              CKA_ALWAYS_AUTHENTICATE = TRUE (enforced by
 *                              the module behind)
 *   SIGNERD_FWD_UNKNOWN_ATTRS  comma-separated attribute types (hex, 0x171)
 *                              that C_GenerateKeyPair and C_CreateObject
 *                              answer CKR_ATTRIBUTE_TYPE_INVALID to, as a
 *                              module of an older PKCS#11 version does
 *                              (CKA_COPYABLE is 2.40's)
 *   SIGNERD_FWD_UNKNOWN_ATTRS_RV  the code they answer instead (hex, 0xD1:
 *                              CKR_TEMPLATE_INCONSISTENT, as some HSMs do)
 *   SIGNERD_FWD_DELAY_MS=N     sleep N ms before forwarding each signing call
 *                              (C_SignInit, C_Sign, C_SignUpdate, C_SignFinal):
 *                              one network round trip per call, as a network
 *                              HSM's client pays. No lock is held while
 *                              sleeping, so concurrent sessions overlap
 *
 * The environment is read at each C_GetFunctionList and C_Initialize that
 * reaches the module behind.
 */
#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType(*name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType(*name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CKM_EC_EDWARDS_KEY_PAIR_GEN_ 0x1055UL
#define CKM_EDDSA_ 0x1057UL

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST fwd;
static int init_count;     /* "count" mode: initialisations outstanding */
static long open_sessions; /* sessions open through us */

static const char *env(const char *name) {
	const char *v = getenv(name);
	return v ? v : "";
}

static long env_long(const char *name) { return atol(env(name)); }

static void logf_(const char *fmt, unsigned long a, unsigned long b) {
	const char *path = env("SIGNERD_FWD_LOG");
	if (!*path)
		return;
	FILE *f = fopen(path, "a");
	if (!f)
		return;
	fprintf(f, fmt, a, b);
	fputc('\n', f);
	fclose(f);
}

static int unsupported(const char *fn) {
	const char *list = env("SIGNERD_FWD_UNSUPPORTED");
	size_t n = strlen(fn);
	for (const char *p = strstr(list, fn); p; p = strstr(p + 1, fn))
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return 1;
	return 0;
}

static int hidden(CK_MECHANISM_TYPE m) {
	return *env("SIGNERD_FWD_HIDE_EDDSA") && (m == CKM_EDDSA_ || m == CKM_EC_EDWARDS_KEY_PAIR_GEN_);
}

static CK_RV fwd_Initialize(CK_VOID_PTR args) {
	const char *mode = env("SIGNERD_FWD_INIT");
	CK_C_INITIALIZE_ARGS_PTR a = args;
	CK_RV rv;
	pthread_mutex_lock(&mu);
	if (!strcmp(mode, "cantlock") || (!strcmp(mode, "needlock") && (!a || !(a->flags & CKF_OS_LOCKING_OK))))
		rv = CKR_CANT_LOCK;
	else if (!strcmp(mode, "count") && init_count > 0) {
		init_count++;
		rv = CKR_OK;
	} else {
		rv = real->C_Initialize(args);
		if (rv == CKR_OK) {
			init_count = 1;
			open_sessions = 0;
		}
	}
	pthread_mutex_unlock(&mu);
	logf_("C_Initialize 0x%lx flags=0x%lx", rv, a ? (unsigned long)a->flags : 0);
	return rv;
}

static CK_RV fwd_Finalize(CK_VOID_PTR reserved) {
	CK_RV rv;
	pthread_mutex_lock(&mu);
	if (!strcmp(env("SIGNERD_FWD_INIT"), "count") && init_count > 1) {
		init_count--;
		rv = CKR_OK;
	} else {
		rv = real->C_Finalize(reserved);
		init_count = 0;
		open_sessions = 0;
	}
	pthread_mutex_unlock(&mu);
	logf_("C_Finalize 0x%lx", rv, 0);
	return rv;
}

static CK_RV fwd_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
	CK_RV rv = real->C_GetTokenInfo(slot, info);
	long n = env_long("SIGNERD_FWD_MAX_SESSIONS");
	if (rv == CKR_OK && n > 0)
		info->ulMaxSessionCount = info->ulMaxRwSessionCount = (CK_ULONG)n;
	return rv;
}

static CK_RV fwd_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
	if (unsupported("C_GetMechanismList"))
		return CKR_FUNCTION_NOT_SUPPORTED;
	CK_ULONG n = 0;
	CK_RV rv = real->C_GetMechanismList(slot, NULL, &n);
	if (rv != CKR_OK)
		return rv;
	CK_MECHANISM_TYPE *all = calloc(n ? n : 1, sizeof *all);
	if (!all)
		return CKR_HOST_MEMORY;
	rv = real->C_GetMechanismList(slot, all, &n);
	CK_ULONG kept = 0;
	for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++)
		if (!hidden(all[i]))
			all[kept++] = all[i];
	if (rv == CKR_OK) {
		if (list && *count < kept)
			rv = CKR_BUFFER_TOO_SMALL;
		else if (list)
			memcpy(list, all, kept * sizeof *all);
		*count = kept;
	}
	free(all);
	return rv;
}

static CK_RV fwd_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE m, CK_MECHANISM_INFO_PTR info) {
	if (unsupported("C_GetMechanismInfo"))
		return CKR_FUNCTION_NOT_SUPPORTED;
	if (hidden(m))
		return CKR_MECHANISM_INVALID;
	return real->C_GetMechanismInfo(slot, m, info);
}

static CK_RV fwd_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR h) {
	long limit = env_long("SIGNERD_FWD_SESSION_LIMIT");
	pthread_mutex_lock(&mu);
	if (limit > 0 && open_sessions >= limit) {
		pthread_mutex_unlock(&mu);
		logf_("C_OpenSession 0x%lx open=%lu", CKR_SESSION_COUNT, (unsigned long)limit);
		return CKR_SESSION_COUNT;
	}
	CK_RV rv = real->C_OpenSession(slot, flags, app, notify, h);
	if (rv == CKR_OK)
		open_sessions++;
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV fwd_CloseSession(CK_SESSION_HANDLE h) {
	CK_RV rv = real->C_CloseSession(h);
	pthread_mutex_lock(&mu);
	if (rv == CKR_OK && open_sessions > 0)
		open_sessions--;
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV fwd_CloseAllSessions(CK_SLOT_ID slot) {
	CK_RV rv = real->C_CloseAllSessions(slot);
	pthread_mutex_lock(&mu);
	if (rv == CKR_OK)
		open_sessions = 0;
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV fwd_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
	CK_RV rv = real->C_Login(h, user, pin, len);
	logf_("C_Login user=%lu 0x%lx", user, rv);
	return rv;
}

static CK_BBOOL ck_true = CK_TRUE;

/* withAlwaysAuth returns tmpl plus CKA_ALWAYS_AUTHENTICATE = TRUE, or NULL. */
static CK_ATTRIBUTE_PTR withAlwaysAuth(CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) {
	CK_ATTRIBUTE_PTR t = calloc(n + 1, sizeof *t);
	if (!t)
		return NULL;
	memcpy(t, tmpl, n * sizeof *t);
	t[n].type = CKA_ALWAYS_AUTHENTICATE;
	t[n].pValue = &ck_true;
	t[n].ulValueLen = sizeof ck_true;
	return t;
}

static int isPrivateKey(CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) {
	for (CK_ULONG i = 0; i < n; i++)
		if (tmpl[i].type == CKA_CLASS && tmpl[i].ulValueLen == sizeof(CK_OBJECT_CLASS))
			return *(CK_OBJECT_CLASS *)tmpl[i].pValue == CKO_PRIVATE_KEY;
	return 0;
}

/* unknownAttr reports whether tmpl holds a type SIGNERD_FWD_UNKNOWN_ATTRS lists. */
static int unknownAttr(CK_ATTRIBUTE_PTR tmpl, CK_ULONG n) {
	const char *p = env("SIGNERD_FWD_UNKNOWN_ATTRS");
	while (*p) {
		char *end;
		unsigned long typ = strtoul(p, &end, 0);
		if (end == p)
			return 0;
		for (CK_ULONG i = 0; i < n; i++)
			if (tmpl[i].type == typ)
				return 1;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

static CK_RV unknownAttrRV(void) {
	const char *rv = env("SIGNERD_FWD_UNKNOWN_ATTRS_RV");
	return *rv ? (CK_RV)strtoul(rv, NULL, 0) : CKR_ATTRIBUTE_TYPE_INVALID;
}

static CK_RV fwd_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pubT, CK_ULONG pubN,
				 CK_ATTRIBUTE_PTR privT, CK_ULONG privN, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv) {
	if (m && hidden(m->mechanism))
		return CKR_MECHANISM_INVALID;
	if (unknownAttr(pubT, pubN) || unknownAttr(privT, privN))
		return unknownAttrRV();
	if (!*env("SIGNERD_FWD_ALWAYS_AUTH"))
		return real->C_GenerateKeyPair(h, m, pubT, pubN, privT, privN, pub, priv);
	CK_ATTRIBUTE_PTR t = withAlwaysAuth(privT, privN);
	if (!t)
		return CKR_HOST_MEMORY;
	CK_RV rv = real->C_GenerateKeyPair(h, m, pubT, pubN, t, privN + 1, pub, priv);
	free(t);
	return rv;
}

static CK_RV fwd_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR o) {
	if (unknownAttr(tmpl, n))
		return unknownAttrRV();
	if (!*env("SIGNERD_FWD_ALWAYS_AUTH") || !isPrivateKey(tmpl, n))
		return real->C_CreateObject(h, tmpl, n, o);
	CK_ATTRIBUTE_PTR t = withAlwaysAuth(tmpl, n);
	if (!t)
		return CKR_HOST_MEMORY;
	CK_RV rv = real->C_CreateObject(h, t, n + 1, o);
	free(t);
	return rv;
}

/* roundTrip sleeps SIGNERD_FWD_DELAY_MS, holding no lock. */
static void roundTrip(void) {
	long ms = env_long("SIGNERD_FWD_DELAY_MS");
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static CK_RV fwd_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key) {
	if (m && hidden(m->mechanism))
		return CKR_MECHANISM_INVALID;
	roundTrip();
	return real->C_SignInit(h, m, key);
}

static CK_RV fwd_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG n, CK_BYTE_PTR sig, CK_ULONG_PTR sigLen) {
	roundTrip();
	return real->C_Sign(h, data, n, sig, sigLen);
}

static CK_RV fwd_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG n) {
	roundTrip();
	return real->C_SignUpdate(h, part, n);
}

static CK_RV fwd_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sigLen) {
	roundTrip();
	return real->C_SignFinal(h, sig, sigLen);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
	if (!out)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&mu);
	if (!real) {
		const char *path = env("SIGNERD_FWD_MODULE");
		void *lib = *path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
		CK_C_GetFunctionList get = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
		if (!get || get(&real) != CKR_OK) {
			real = NULL;
			pthread_mutex_unlock(&mu);
			return CKR_GENERAL_ERROR;
		}
		fwd = *real;
		fwd.C_Initialize = fwd_Initialize;
		fwd.C_Finalize = fwd_Finalize;
		fwd.C_GetTokenInfo = fwd_GetTokenInfo;
		fwd.C_GetMechanismList = fwd_GetMechanismList;
		fwd.C_GetMechanismInfo = fwd_GetMechanismInfo;
		fwd.C_OpenSession = fwd_OpenSession;
		fwd.C_CloseSession = fwd_CloseSession;
		fwd.C_CloseAllSessions = fwd_CloseAllSessions;
		fwd.C_Login = fwd_Login;
		fwd.C_GenerateKeyPair = fwd_GenerateKeyPair;
		fwd.C_CreateObject = fwd_CreateObject;
		fwd.C_SignInit = fwd_SignInit;
		fwd.C_Sign = fwd_Sign;
		fwd.C_SignUpdate = fwd_SignUpdate;
		fwd.C_SignFinal = fwd_SignFinal;
	}
	pthread_mutex_unlock(&mu);
	*out = &fwd;
	return CKR_OK;
}
