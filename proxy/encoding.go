package proxy

import (
	"fmt"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"

	"github.com/shardgate/shardgate/planner"
)

// The gateway works in UTF-8: it parses statement text, routes by text
// values and writes its own SQL in it. A client may use another
// client_encoding: its backend connections then use the same one, so the
// shards convert what they receive and send as Postgres would for the
// client directly, while the gateway decodes what it must read (statement
// text, text parameters it routes by) and encodes the SQL it sends.

// clientEncodings are Postgres's client encodings other than UTF8 that the
// gateway converts, by the names Postgres reports them.
var clientEncodings = map[string]encoding.Encoding{
	"LATIN1": charmap.ISO8859_1, "LATIN2": charmap.ISO8859_2, "LATIN3": charmap.ISO8859_3,
	"LATIN4": charmap.ISO8859_4, "LATIN5": charmap.ISO8859_9, "LATIN6": charmap.ISO8859_10,
	"LATIN7": charmap.ISO8859_13, "LATIN8": charmap.ISO8859_14, "LATIN9": charmap.ISO8859_15,
	"LATIN10": charmap.ISO8859_16, "ISO_8859_5": charmap.ISO8859_5, "ISO_8859_6": charmap.ISO8859_6,
	"ISO_8859_7": charmap.ISO8859_7, "ISO_8859_8": charmap.ISO8859_8,
	"WIN866": charmap.CodePage866, "WIN874": charmap.Windows874, "WIN1250": charmap.Windows1250,
	"WIN1251": charmap.Windows1251, "WIN1252": charmap.Windows1252, "WIN1253": charmap.Windows1253,
	"WIN1254": charmap.Windows1254, "WIN1255": charmap.Windows1255, "WIN1256": charmap.Windows1256,
	"WIN1257": charmap.Windows1257, "WIN1258": charmap.Windows1258,
	"KOI8R": charmap.KOI8R, "KOI8U": charmap.KOI8U,
	"SJIS": japanese.ShiftJIS, "EUC_JP": japanese.EUCJP,
	"EUC_KR": korean.EUCKR, "UHC": korean.EUCKR, // x/text's EUC-KR is Windows 949, which is UHC
	"EUC_CN": simplifiedchinese.GBK, "GBK": simplifiedchinese.GBK, "GB18030": simplifiedchinese.GB18030,
	"BIG5": traditionalchinese.Big5,
}

// lookupEncoding returns the conversion for client_encoding name: nil for
// UTF8 (and SQL_ASCII, whose bytes Postgres does not convert either), or an
// error for an encoding the gateway cannot convert.
func lookupEncoding(name string) (encoding.Encoding, error) {
	switch n := strings.ToUpper(name); n {
	case "", "UTF8", "UNICODE", "SQL_ASCII":
		return nil, nil
	default:
		if e, ok := clientEncodings[n]; ok {
			return e, nil
		}
	}
	return nil, &planner.Error{Code: codeFeatureNotSupp,
		Message: fmt.Sprintf("client_encoding %s is not supported by shardgate yet", name),
		Hint:    "Use UTF8, or one of the LATIN, WIN, ISO_8859, KOI8, SJIS, EUC_JP, EUC_KR, UHC, EUC_CN, GBK, GB18030 or BIG5 encodings."}
}

// decodeClient turns text the client sent in its client_encoding into
// UTF-8.
func (s *session) decodeClient(text string) (string, error) {
	enc, err := lookupEncoding(s.reported["client_encoding"])
	if err != nil || enc == nil {
		return text, err
	}
	out, err := enc.NewDecoder().String(text)
	if err != nil {
		return "", &planner.Error{Code: "22021", Message: fmt.Sprintf("invalid byte sequence for encoding %q", s.reported["client_encoding"])}
	}
	return out, nil
}

// encodeSQL turns SQL the gateway holds in UTF-8 into the client_encoding
// of b's connection, which the shard expects.
func (b *backend) encodeSQL(sql string) (string, error) {
	enc, err := lookupEncoding(b.pg.ParameterStatus("client_encoding"))
	if err != nil || enc == nil {
		return sql, err
	}
	out, err := enc.NewEncoder().String(sql)
	if err != nil {
		return "", &planner.Error{Code: "22P05", Message: fmt.Sprintf("a character of the statement has no equivalent in encoding %q", b.pg.ParameterStatus("client_encoding"))}
	}
	return out, nil
}
