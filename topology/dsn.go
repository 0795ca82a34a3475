package topology

import (
	"net/url"
	"strings"
)

const redacted = "xxxxx"

// RedactDSN hides the password of a connection string, in URL form
// (postgres://user:secret@host/db?password=secret) or keyword/value form
// (host=db password='a secret'), for logs and displays. A string it cannot
// read is replaced whole when it might hold a password.
func RedactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i > 0 && !strings.ContainsAny(dsn[:i], " =") {
		return redactURL(dsn, i)
	}
	out, ok := redactKeywords(dsn)
	if !ok {
		if strings.Contains(strings.ToLower(dsn), "password") {
			return "(connection string hidden: it could not be read to redact its password)"
		}
		return dsn
	}
	return out
}

func redactURL(dsn string, schemeEnd int) string {
	u, err := url.Parse(dsn)
	if err != nil {
		// Hide everything between the scheme and the last @ of the
		// authority, where user and password live.
		rest := dsn[schemeEnd+3:]
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			return dsn
		}
		user, _, _ := strings.Cut(rest[:at], ":")
		return dsn[:schemeEnd+3] + user + ":" + redacted + rest[at:]
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", redacted)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactKeywords rewrites a libpq keyword/value string: spaces may surround
// the =, and a value may be single-quoted with backslash escapes.
func redactKeywords(dsn string) (string, bool) {
	var parts []string
	s := dsn
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			return strings.Join(parts, " "), true
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return "", false
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t\n") {
			return "", false
		}
		s = strings.TrimLeft(s[eq+1:], " \t\n\r\f\v")
		raw, rest, ok := cutValue(s)
		if !ok {
			return "", false
		}
		if key == "password" {
			raw = redacted
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
