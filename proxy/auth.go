package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
	"go.uber.org/zap"

	"github.com/shardgate/shardgate/topology"
)

const (
	mechSCRAM     = "SCRAM-SHA-256"
	mechSCRAMPlus = "SCRAM-SHA-256-PLUS"
)

// mockSecret makes the fake SCRAM salt of an unknown user stable within a
// process, so a failed login for an unknown user looks like one for a known
// user with a wrong password.
var mockSecret = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

// errAuthFailed is the one answer to a wrong password and an unknown user,
// as Postgres gives it, so that nobody can tell which it was.
func errAuthFailed(user string) (string, string) {
	return "28P01", fmt.Sprintf("password authentication failed for user %q", user)
}

// authenticate runs the SCRAM-SHA-256 exchange (SCRAM-SHA-256-PLUS with
// channel binding over TLS) against the user's verifier from the topology.
// It returns false, having answered FATAL, if the client fails.
func (s *session) authenticate(snap *topology.Snapshot) bool {
	creds, known := s.credentials(snap)
	server, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) {
		// Postgres ignores the user name inside the SCRAM message; the
		// startup packet's is the one that counts.
		return creds, nil
	})
	if err != nil {
		return s.fatalErr(err)
	}
	mechs := []string{mechSCRAM}
	binding, hasBinding := s.channelBinding()
	if hasBinding {
		mechs = []string{mechSCRAMPlus, mechSCRAM}
	}
	s.be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: mechs})
	if err := s.be.Flush(); err != nil {
		return false
	}
	if err := s.be.SetAuthType(pgproto3.AuthTypeSASL); err != nil {
		return false
	}
	msg, err := s.be.Receive()
	if err != nil {
		return false
	}
	first, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok {
		return s.fatal(codeProtocolViolation, fmt.Sprintf("expected SASL response, got message type %T", msg))
	}
	var conv *scram.ServerConversation
	switch {
	case first.AuthMechanism == mechSCRAMPlus && hasBinding:
		conv = server.NewConversationWithChannelBindingRequired(binding)
	case first.AuthMechanism == mechSCRAM && hasBinding:
		// A client that could bind but believes the server cannot is
		// told apart (downgrade protection) by the conversation.
		conv = server.NewConversationWithChannelBinding(binding)
	case first.AuthMechanism == mechSCRAM:
		conv = server.NewConversation()
	default:
		return s.fatal(codeProtocolViolation, "client selected an invalid SASL authentication mechanism")
	}
	reply, err := conv.Step(string(first.Data))
	if err != nil {
		return s.authFailed("password", err)
	}
	s.be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(reply)})
	if err := s.be.Flush(); err != nil {
		return false
	}
	if err := s.be.SetAuthType(pgproto3.AuthTypeSASLContinue); err != nil {
		return false
	}
	msg, err = s.be.Receive()
	if err != nil {
		return false
	}
	final, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return s.fatal(codeProtocolViolation, fmt.Sprintf("expected SASL response, got message type %T", msg))
	}
	reply, err = conv.Step(string(final.Data))
	if err != nil || !conv.Valid() || !known {
		return s.authFailed("password", err)
	}
	s.be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte(reply)})
	return true
}

// credentials returns the user's SCRAM credentials, or made-up ones for an
// unknown user (known false), so the exchange runs the same way.
func (s *session) credentials(snap *topology.Snapshot) (scram.StoredCredentials, bool) {
	if u := snap.User(s.user); u != nil {
		if c, err := u.Credentials(); err == nil {
			return c, true
		}
		s.log.Error("user has an unreadable verifier in etcd", zap.String("user", s.user))
	}
	mac := hmac.New(sha256.New, mockSecret)
	mac.Write([]byte(s.user))
	fake := mac.Sum(nil)
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(fake[:16]), Iters: 4096},
		StoredKey:  fake, ServerKey: fake,
	}, false
}

// authFailed answers 28P01 with the same text for every reason, and logs
// and counts the reason.
func (s *session) authFailed(reason string, err error) bool {
	s.srv.count(authFailures, reason)
	s.log.Warn("authentication failed", zap.String("reason", reason), zap.NamedError("detail", err))
	code, msg := errAuthFailed(s.user)
	s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg})
	_ = s.be.Flush()
	return false
}

// channelBinding returns the tls-server-end-point binding of this session's
// TLS connection: a hash of the certificate the gateway presented, as
// Postgres binds SCRAM-SHA-256-PLUS.
func (s *session) channelBinding() (scram.ChannelBinding, bool) {
	tc, ok := s.conn.(*tls.Conn)
	if !ok || s.srv.tls == nil || s.srv.tls.GetCertificate == nil {
		return scram.ChannelBinding{}, false
	}
	state := tc.ConnectionState()
	cert, err := s.srv.tls.GetCertificate(&tls.ClientHelloInfo{ServerName: state.ServerName})
	if err != nil || cert == nil || len(cert.Certificate) == 0 {
		return scram.ChannelBinding{}, false
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return scram.ChannelBinding{}, false
	}
	var h hash.Hash
	switch leaf.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		h = sha512.New()
	default: // MD5 and SHA-1 are upgraded to SHA-256 (RFC 5929)
		h = sha256.New()
	}
	h.Write(leaf.Raw)
	return scram.ChannelBinding{Type: scram.ChannelBindingTLSServerEndpoint, Data: h.Sum(nil)}, true
}
