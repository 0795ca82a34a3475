package planner

import (
	"strconv"
	"strings"
)

// literal is a constant token of a statement that the plan cache may
// replace: a plain decimal integer or a plain string.
type literal struct {
	start, end int // byte offsets of the token in the text
	class      byte
}

// Literal classes. Postgres's lexer turns an integer that fits int4 into an
// integer constant and a larger one into a numeric one, so the two are
// different shapes of parse tree and different cache keys.
const (
	classInt    = 'i'
	classBigInt = 'n'
	classString = 's'
)

// shapeMark stands for a replaced literal in a normalized text; a NUL byte
// cannot occur in a statement (Postgres refuses it in the protocol).
const shapeMark = '\x00'

// normalize finds the literals of sql that the plan cache may vary and
// returns sql with each replaced by a mark of its class: two texts with the
// same normalized form parse to trees that differ only in those constants.
// ok is false when the lexer meets what it does not read with certainty
// (numbers that are not plain integers next to letters, strings that
// continue on the next line, an unterminated token): such a text is cached
// only as it is.
func normalize(sql string) (norm string, lits []literal, ok bool) {
	var b strings.Builder
	last := 0
	flush := func(l literal) {
		if b.Cap() == 0 {
			b.Grow(len(sql))
		}
		b.WriteString(sql[last:l.start])
		b.WriteByte(shapeMark)
		b.WriteByte(l.class)
		last = l.end
		lits = append(lits, l)
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end, closed := blockCommentEnd(sql, i)
			if !closed {
				return "", nil, false
			}
			i = end
		case c == '"':
			end, closed := quotedEnd(sql, i, '"', false)
			if !closed {
				return "", nil, false
			}
			i = end
		case c == '\'':
			end, closed := quotedEnd(sql, i, '\'', false)
			if !closed {
				return "", nil, false
			}
			// Strings on consecutive lines are one constant; a backslash
			// reads differently under standard_conforming_strings off.
			if continuedString(sql, end) {
				return "", nil, false
			}
			if !strings.ContainsRune(sql[i:end], '\\') {
				flush(literal{start: i, end: end, class: classString})
			}
			i = end
		case c == '$':
			end, ok := dollarEnd(sql, i)
			if !ok {
				return "", nil, false
			}
			i = end
		case isIdentStart(c):
			start := i
			for i < len(sql) && isIdentChar(sql[i]) {
				i++
			}
			if i+1 < len(sql) && sql[i] == '&' && (sql[i+1] == '\'' || sql[i+1] == '"') {
				i++ // U&'..', U&"..": Unicode escapes
			}
			if i < len(sql) && (sql[i] == '\'' || sql[i] == '"') {
				// E'..', B'..', X'..', N'..', U&'..': a string whose
				// prefix changes how it reads, kept as written.
				escapes := i-start == 1 && (c == 'e' || c == 'E') && sql[i] == '\''
				end, closed := quotedEnd(sql, i, sql[i], escapes)
				if !closed || sql[i] == '\'' && continuedString(sql, end) {
					return "", nil, false
				}
				i = end
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9':
			start := i
			for i < len(sql) && sql[i] >= '0' && sql[i] <= '9' {
				i++
			}
			if i < len(sql) && (isIdentChar(sql[i]) || sql[i] == '.') || start > 0 && sql[start-1] == '.' || c == '.' {
				// 1.5, 1e5, 0x1f, 1_000, 12abc, .5: kept as written, and
				// with the rest of the token.
				for i < len(sql) && (isIdentChar(sql[i]) || sql[i] == '.' ||
					(sql[i] == '+' || sql[i] == '-') && (sql[i-1] == 'e' || sql[i-1] == 'E')) {
					i++
				}
				continue
			}
			class := byte(classInt)
			if _, err := strconv.ParseInt(sql[start:i], 10, 32); err != nil {
				class = classBigInt
			}
			flush(literal{start: start, end: i, class: class})
		default:
			i++
		}
	}
	if len(lits) == 0 {
		return sql, nil, true
	}
	b.WriteString(sql[last:])
	return b.String(), lits, true
}

// blockCommentEnd returns the offset after the /* */ comment at i, which
// may nest as in Postgres.
func blockCommentEnd(sql string, i int) (int, bool) {
	depth := 0
	for i < len(sql)-1 {
		switch {
		case sql[i] == '/' && sql[i+1] == '*':
			depth++
			i += 2
		case sql[i] == '*' && sql[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i, true
			}
		default:
			i++
		}
	}
	return 0, false
}

// quotedEnd returns the offset after the quoted token at i; a doubled quote
// stands for one, and with escapes (E'..') a backslash escapes what follows.
func quotedEnd(sql string, i int, quote byte, escapes bool) (int, bool) {
	for i++; i < len(sql); i++ {
		switch {
		case escapes && sql[i] == '\\':
			i++
		case sql[i] != quote:
		case i+1 < len(sql) && sql[i+1] == quote:
			i++
		default:
			return i + 1, true
		}
	}
	return 0, false
}

// continuedString reports whether another string follows the one ending at
// end after nothing but whitespace and comments: Postgres joins them into
// one constant when a newline separates them (and refuses them otherwise).
func continuedString(sql string, end int) bool {
	for i := end; i < len(sql); {
		switch c := sql[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			next, closed := blockCommentEnd(sql, i)
			if !closed {
				return true // unreadable: not cached
			}
			i = next
		default:
			return c == '\''
		}
	}
	return false
}

// dollarEnd returns the offset after the $n parameter or the $tag$...$tag$
// string at i.
func dollarEnd(sql string, i int) (int, bool) {
	j := i + 1
	if j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
		for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
			j++
		}
		return j, true
	}
	for j < len(sql) && sql[j] != '$' && isIdentChar(sql[j]) {
		j++
	}
	if j >= len(sql) || sql[j] != '$' {
		// Not a dollar quote: a lone $ (an operator character).
		return i + 1, true
	}
	tag := sql[i : j+1]
	end := strings.Index(sql[j+1:], tag)
	if end < 0 {
		return 0, false
	}
	return j + 1 + end + len(tag), true
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}
