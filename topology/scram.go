package topology

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xdg-go/scram"
	"github.com/xdg-go/stringprep"
)

// VerifierIterations is the PBKDF2 iteration count NewVerifier uses:
// Postgres's default (scram_iterations = 4096).
const VerifierIterations = 4096

// verifierSaltLen is the salt length Postgres uses (SCRAM_DEFAULT_SALT_LEN).
const verifierSaltLen = 16

// verifierScheme opens every verifier in Postgres's format.
const verifierScheme = "SCRAM-SHA-256"

// Verifier is a parsed SCRAM-SHA-256 verifier: what a server keeps to check a
// password without knowing it. It is the value of pg_authid.rolpassword for
// a role with a SCRAM password.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// NewVerifier returns a new SCRAM-SHA-256 verifier for password in the text
// form Postgres stores in pg_authid.rolpassword,
//
//	SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//
// with a random 16-byte salt and VerifierIterations iterations. The password
// is normalized with SASLprep exactly as Postgres does, so the verifier is
// interchangeable with one Postgres makes: ALTER ROLE ... PASSWORD '<it>'
// stores it unchanged, and a client that logs in with password works against
// either.
func NewVerifier(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	salt := make([]byte, verifierSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("making a salt: %w", err)
	}
	v, err := deriveVerifier(password, salt, VerifierIterations)
	if err != nil {
		return "", err
	}
	return v.String(), nil
}

// deriveVerifier computes the verifier of password for salt and iterations.
func deriveVerifier(password string, salt []byte, iterations int) (Verifier, error) {
	// NewClientUnprepped: the password is prepared here, the way Postgres
	// does it, rather than by NewClient, which fails where Postgres falls
	// back to the raw password.
	c, err := scram.SHA256.NewClientUnprepped("", saslPrep(password), "")
	if err != nil {
		return Verifier{}, fmt.Errorf("deriving SCRAM keys: %w", err)
	}
	creds, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return Verifier{}, fmt.Errorf("deriving SCRAM keys: %w", err)
	}
	return Verifier{Iterations: iterations, Salt: salt, StoredKey: creds.StoredKey, ServerKey: creds.ServerKey}, nil
}

// saslPrep normalizes a password the way Postgres's pg_saslprep does before
// deriving SCRAM keys: pure ASCII is used as is; otherwise SASLprep
// (RFC 4013) applies, and where it fails — invalid UTF-8, a prohibited
// character, nothing left after mapping — Postgres uses the raw bytes, and so
// does this.
func saslPrep(password string) string {
	ascii := true
	for i := 0; i < len(password); i++ {
		ascii = ascii && password[i] < utf8.RuneSelf
	}
	if ascii || !utf8.ValidString(password) {
		return password
	}
	p, err := stringprep.SASLprep.Prepare(password)
	if err != nil || p == "" {
		return password
	}
	return p
}

// ParseVerifier parses a SCRAM-SHA-256 verifier in Postgres's text form (see
// NewVerifier). An md5 hash or a plain password is refused.
func ParseVerifier(s string) (Verifier, error) {
	// Never quote s in an error: a plain password may have been passed by
	// mistake.
	bad := func(what string) (Verifier, error) {
		return Verifier{}, fmt.Errorf("not a SCRAM-SHA-256 verifier (%s); want %s$<iterations>:<salt>$<StoredKey>:<ServerKey>", what, verifierScheme)
	}
	scheme, rest, ok := strings.Cut(s, "$")
	if !ok || scheme != verifierScheme {
		if strings.HasPrefix(s, "md5") && len(s) == 35 {
			return bad("an md5 hash")
		}
		return bad("no " + verifierScheme + "$ prefix")
	}
	factors, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return bad("no keys")
	}
	iters, salt64, ok1 := strings.Cut(factors, ":")
	stored64, server64, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return bad("missing ':'")
	}
	var v Verifier
	var err error
	if v.Iterations, err = strconv.Atoi(iters); err != nil || v.Iterations < 1 {
		return bad("bad iteration count")
	}
	dec := base64.StdEncoding.Strict()
	if v.Salt, err = dec.DecodeString(salt64); err != nil || len(v.Salt) == 0 {
		return bad("bad salt")
	}
	if v.StoredKey, err = dec.DecodeString(stored64); err != nil || len(v.StoredKey) != 32 {
		return bad("bad StoredKey")
	}
	if v.ServerKey, err = dec.DecodeString(server64); err != nil || len(v.ServerKey) != 32 {
		return bad("bad ServerKey")
	}
	return v, nil
}

// String returns v in Postgres's text form (see NewVerifier).
func (v Verifier) String() string {
	enc := base64.StdEncoding
	return fmt.Sprintf("%s$%d:%s$%s:%s", verifierScheme, v.Iterations,
		enc.EncodeToString(v.Salt), enc.EncodeToString(v.StoredKey), enc.EncodeToString(v.ServerKey))
}

// Credentials returns v as the stored credentials of an xdg-go/scram server
// (scram.SHA256.NewServer), which checks a client's proof against them
// without learning the password.
func (v Verifier) Credentials() scram.StoredCredentials {
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(v.Salt), Iters: v.Iterations},
		StoredKey:  v.StoredKey,
		ServerKey:  v.ServerKey,
	}
}
