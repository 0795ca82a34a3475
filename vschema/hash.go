package vschema

import (
	"fmt"
	"math/bits"
)

// This file reimplements, in Go, the 64-bit "extended" hash functions that
// PostgreSQL uses for hash partitioning and hash indexes, evaluated with
// seed 0. The results are bit-for-bit identical to what a little-endian
// PostgreSQL server returns, so a row routed here lands on the same shard
// that Postgres itself would pick with satisfies_hash_partition and friends.
//
// The underlying function is Bob Jenkins' lookup3 hash (2006 revision), as
// adapted in PostgreSQL's src/common/hashfn.c. The extended variants return
// the final b and c state words combined as (b << 32) | c. A non-zero seed
// would be mixed into the state before the data; with seed 0 that step is
// skipped entirely, which is the only case implemented here.

// jenkinsInit is the starting value of the lookup3 state words before the
// key length is added: the golden ratio plus PostgreSQL's fixed offset.
const jenkinsInit uint32 = 0x9e3779b9 + 3923095

// jenkinsMix reversibly mixes three 32-bit state words (lookup3 mix()).
func jenkinsMix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

// jenkinsFinal performs the last avalanche of the three state words (lookup3
// final()). Only b and c are needed by the extended variants.
func jenkinsFinal(a, b, c uint32) (uint32, uint32) {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return b, c
}

// jenkinsLE32 reads four bytes of k starting at i as a little-endian uint32.
func jenkinsLE32[T string | []byte](k T, i int) uint32 {
	_ = k[i+3]
	return uint32(k[i]) | uint32(k[i+1])<<8 | uint32(k[i+2])<<16 | uint32(k[i+3])<<24
}

// hashBytesExtended computes PostgreSQL's hash_bytes_extended(k, len(k), 0)
// (equivalently hash_any_extended with seed 0) as on a little-endian host.
// It works on strings and byte slices without copying or allocating.
func hashBytesExtended[T string | []byte](k T) uint64 {
	n := len(k)
	a := jenkinsInit + uint32(n)
	b, c := a, a

	i := 0
	for ; n-i >= 12; i += 12 {
		a += jenkinsLE32(k, i)
		b += jenkinsLE32(k, i+4)
		c += jenkinsLE32(k, i+8)
		a, b, c = jenkinsMix(a, b, c)
	}

	// The last 0..11 bytes: bytes 0-3 fill a and bytes 4-7 fill b from the
	// low byte up; bytes 8-10 go into c starting at its second byte, since
	// the lowest byte of c is reserved for the length.
	switch rest := k[i:]; len(rest) {
	case 11:
		c += uint32(rest[10]) << 24
		fallthrough
	case 10:
		c += uint32(rest[9]) << 16
		fallthrough
	case 9:
		c += uint32(rest[8]) << 8
		fallthrough
	case 8:
		b += uint32(rest[7]) << 24
		fallthrough
	case 7:
		b += uint32(rest[6]) << 16
		fallthrough
	case 6:
		b += uint32(rest[5]) << 8
		fallthrough
	case 5:
		b += uint32(rest[4])
		fallthrough
	case 4:
		a += uint32(rest[3]) << 24
		fallthrough
	case 3:
		a += uint32(rest[2]) << 16
		fallthrough
	case 2:
		a += uint32(rest[1]) << 8
		fallthrough
	case 1:
		a += uint32(rest[0])
	}

	b, c = jenkinsFinal(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// hashUint32Extended computes PostgreSQL's hash_bytes_uint32_extended(k, 0)
// (hash_uint32_extended with seed 0).
func hashUint32Extended(k uint32) uint64 {
	a := jenkinsInit + 4
	b, c := a, a
	a += k
	b, c = jenkinsFinal(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// HashInt64 returns hashint8extended(v, 0), the value PostgreSQL computes for
// an int8 hash-partition key or SELECT hashint8extended(v, 0). int2 and int4
// values hash the same as the equal int8 (Postgres makes hashint2extended,
// hashint4extended and hashint8extended agree for equal values), so callers
// should widen smaller integers to int64 and call this.
//
// The 64-bit value is folded to 32 bits by XORing the low half with the high
// half, inverting the high half first for negative values so that small
// negative numbers fold to their int4 representation; the folded value is
// then hashed with hash_uint32_extended.
func HashInt64(v int64) int64 {
	lo := uint32(v)
	hi := uint32(uint64(v) >> 32)
	if v < 0 {
		hi = ^hi
	}
	return int64(hashUint32Extended(lo ^ hi))
}

// HashText returns hashtextextended(s, 0) for text and varchar under a
// deterministic collation: PostgreSQL's hash_any_extended over the string's
// UTF-8 bytes with seed 0. Postgres computes the same value for the same
// bytes. Nondeterministic collations hash a collation-dependent sort key
// instead and are not covered.
func HashText(s string) int64 {
	return int64(hashBytesExtended(s))
}

// HashUUID returns uuid_hash_extended(u, 0) for the 16 bytes of a uuid, i.e.
// hash_any_extended over the bytes in their textual (network) order with seed
// 0, the same value PostgreSQL computes.
func HashUUID(u [16]byte) int64 {
	return int64(hashBytesExtended(u[:]))
}

// ParseUUID parses the textual uuid forms PostgreSQL's uuid_in accepts into
// the 16 uuid bytes: 32 hexadecimal digits of either case, optionally with a
// single hyphen after any group of four digits (so the canonical
// 8-4-4-4-12 form, the form without hyphens, and forms such as
// a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11 are all accepted), optionally
// surrounded by one pair of braces. Anything else, including surrounding
// whitespace, is an error, as it is in Postgres.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	i := 0
	braces := len(s) > 0 && s[0] == '{'
	if braces {
		i++
	}
	for n := range u {
		if len(s)-i < 2 {
			return [16]byte{}, uuidSyntaxError(s)
		}
		hi, ok1 := uuidUnhex(s[i])
		lo, ok2 := uuidUnhex(s[i+1])
		if !ok1 || !ok2 {
			return [16]byte{}, uuidSyntaxError(s)
		}
		u[n] = hi<<4 | lo
		i += 2
		// A hyphen may follow every second byte (four hex digits), but not
		// the last one.
		if n%2 == 1 && n < len(u)-1 && i < len(s) && s[i] == '-' {
			i++
		}
	}
	if braces {
		if i >= len(s) || s[i] != '}' {
			return [16]byte{}, uuidSyntaxError(s)
		}
		i++
	}
	if i != len(s) {
		return [16]byte{}, uuidSyntaxError(s)
	}
	return u, nil
}

func uuidSyntaxError(s string) error {
	return fmt.Errorf("invalid input syntax for type uuid: %q", s)
}

// uuidUnhex decodes one ASCII hexadecimal digit.
func uuidUnhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
