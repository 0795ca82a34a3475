package topology

import (
	"net/url"
	"strings"
)

const redacted = "xxxxx"

// hiddenDSN replaces a connection string that could not be read and might
// hold a secret.
const hiddenDSN = "(connection string hidden: it could not be read to redact its password)"

const spaces = " \t\n\r\f\v"

// RedactDSN hides the secrets of a connection string — password and
// sslpassword — for logs and displays. It reads the forms pgx and libpq
// accept: a URL (postgres://user:secret@host/db?password=secret) and
// keyword/value pairs (host=db password='a secret'). Where the two readers
// of a URL could disagree about where a password ends (an unescaped '@' in
// it), it hides the larger part. A string it cannot read is replaced whole
// when it might hold a password.
func RedactDSN(dsn string) string {
	out, _ := redactDSN(dsn)
	return out
}

// DSNHasPassword reports whether dsn carries a secret that would be stored
// with it: a non-empty password in a URL's user info, a password or
// sslpassword parameter, or (for a string it cannot read) anything that
// might be one. A passfile parameter is a reference, not a secret.
func DSNHasPassword(dsn string) bool {
	_, has := redactDSN(dsn)
	return has
}

// redactDSN returns dsn with its secrets hidden and whether it had any.
func redactDSN(dsn string) (string, bool) {
	s := strings.TrimLeft(dsn, spaces)
	if i := strings.Index(s, "://"); i > 0 && !strings.ContainsAny(s[:i], spaces+"=") {
		return redactURL(s, i)
	}
	out, found, ok := redactKeywords(dsn)
	if !ok {
		if l := strings.ToLower(dsn); strings.Contains(l, "pass") || strings.Contains(l, "@") {
			return hiddenDSN, true
		}
		return dsn, false
	}
	return out, found
}

// isSecretKey reports whether a parameter's value is a secret. pgx knows
// password and sslpassword; any key that merely resembles them is sent to
// the server as a setting, which is no reason to print its value either.
func isSecretKey(key string) bool { return strings.Contains(strings.ToLower(key), "password") }

// redactURL hides the password of the user info and the secret query
// parameters. libpq and pgx end the user info at the first '@' before any
// '/', net/url at the last '@' of the authority, and a mistyped password may
// hold a raw '/': the password is taken to run from the first ':' before the
// first '@' to the last '@' of the string, which covers every reading.
func redactURL(dsn string, schemeEnd int) (string, bool) {
	head, rest := dsn[:schemeEnd+3], dsn[schemeEnd+3:]
	found := false
	if first := strings.IndexByte(rest, '@'); first >= 0 {
		if colon := strings.IndexByte(rest[:first], ':'); colon >= 0 {
			last := strings.LastIndexByte(rest, '@')
			if colon+1 < last {
				rest = rest[:colon+1] + redacted + rest[last:]
				found = true
			}
		}
	}
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		return head + rest, found
	}
	params := strings.Split(rest[q+1:], "&")
	for i, p := range params {
		key, val, ok := strings.Cut(p, "=")
		if !ok || val == "" {
			continue
		}
		if k, err := url.PathUnescape(key); err == nil {
			key = k
		}
		if isSecretKey(key) {
			params[i] = p[:len(p)-len(val)] + redacted
			found = true
		}
	}
	return head + rest[:q+1] + strings.Join(params, "&"), found
}

// redactKeywords rewrites a libpq keyword/value string: spaces may surround
// the =, and a value may be single-quoted with backslash escapes. It reports
// whether a secret was hidden, and ok=false for a string it cannot read.
func redactKeywords(dsn string) (out string, found, ok bool) {
	var parts []string
	s := dsn
	for {
		s = strings.TrimLeft(s, spaces)
		if s == "" {
			return strings.Join(parts, " "), found, true
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return "", false, false
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, spaces) {
			return "", false, false
		}
		s = strings.TrimLeft(s[eq+1:], spaces)
		raw, rest, ok := cutValue(s)
		if !ok {
			return "", false, false
		}
		if isSecretKey(key) && raw != "" && raw != "''" {
			raw = redacted
			found = true
		}
		parts = append(parts, key+"="+raw)
		s = rest
	}
}

// cutValue splits the raw text of one value (quoted or not) from the rest.
func cutValue(s string) (raw, rest string, ok bool) {
	if strings.HasPrefix(s, "'") {
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '\'':
				return s[:i+1], s[i+1:], true
			}
		}
		return "", "", false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ' ', '\t', '\n', '\r', '\f', '\v':
			return s[:i], s[i:], true
		}
	}
	return s, "", true
}
