package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/xdg-go/scram"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shardgate/shardgate/vschema"
)

// User is a login of the gateway, kept under /shardgate/<cluster>/users/<name>.
// It holds a SCRAM-SHA-256 verifier, never a password.
type User struct {
	// Name is the role name clients log in with. Like a Postgres role name
	// it is case-sensitive.
	Name string `json:"name"`
	// Verifier is the user's SCRAM-SHA-256 verifier in Postgres's text form
	// (see NewVerifier and ParseVerifier).
	Verifier string `json:"verifier"`
	// Keyspaces are the keyspaces the user may connect to (as the database
	// name), sorted. A keyspace removed after it was granted just stays
	// listed.
	Keyspaces []string `json:"keyspaces,omitempty"`
	// BackendRole is the Postgres role the gateway uses on the shards for
	// this user's sessions; "" means the role of the shard's own DSN.
	BackendRole string `json:"backend_role,omitempty"`
	// Admin lets the user into the gateway's admin console (the database
	// "shardgate"), which shows every session and can pause traffic.
	Admin bool `json:"admin,omitempty"`
}

// IsAdmin reports whether u may use the admin console. A nil User may not.
func (u *User) IsAdmin() bool { return u != nil && u.Admin }

// CanUse reports whether u was granted keyspace. A nil User can use nothing.
func (u *User) CanUse(keyspace string) bool {
	return u != nil && slices.Contains(u.Keyspaces, keyspace)
}

// Credentials parses u's verifier into the stored credentials of an
// xdg-go/scram server. Users in a Snapshot always parse.
func (u *User) Credentials() (scram.StoredCredentials, error) {
	v, err := ParseVerifier(u.Verifier)
	if err != nil {
		return scram.StoredCredentials{}, fmt.Errorf("user %s: %w", u.Name, err)
	}
	return v.Credentials(), nil
}

// User returns the named user of the snapshot, or nil. Names are
// case-sensitive, like Postgres role names.
func (s *Snapshot) User(name string) *User {
	if s == nil {
		return nil
	}
	return s.Users[name]
}

// roleName is what a user name and a backend role may look like: a Postgres
// role name (at most 63 bytes, case-sensitive) that is also one etcd key
// segment and needs no quoting in a log or a table.
var roleName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

// ValidUserName reports an error unless name can name a user (or a backend
// role): a letter or '_' followed by at most 62 letters, digits, '_', '.' or
// '-'. Case matters.
func ValidUserName(what, name string) error {
	if !roleName.MatchString(name) {
		return fmt.Errorf("%s name %q must be a letter or '_' followed by at most 62 letters, digits, '_', '.' or '-'", what, name)
	}
	return nil
}

// validate checks everything a user record needs before it is stored or
// read into a Snapshot.
func (u *User) validate() error {
	if err := ValidUserName("user", u.Name); err != nil {
		return err
	}
	if _, err := ParseVerifier(u.Verifier); err != nil {
		return fmt.Errorf("user %s: %w", u.Name, err)
	}
	for _, ks := range u.Keyspaces {
		if err := vschema.ValidName("keyspace", ks); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	if u.BackendRole != "" {
		if err := ValidUserName("backend role", u.BackendRole); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	return nil
}

// The subtree of the prefix that holds the users.
const usersDir = "users/"

func (s *Store) userKey(name string) string { return s.prefix + usersDir + name }

// userName returns the user that key (full, with the prefix) holds, if it is
// a user key.
func (s *Store) userName(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, s.prefix+usersDir)
	return name, ok && name != "" && !strings.Contains(name, "/")
}

// parseUser parses the record of user name.
func parseUser(name string, value []byte) (*User, error) {
	var u User
	if err := json.Unmarshal(value, &u); err != nil {
		return nil, fmt.Errorf("bad user record %s: %w", name, err)
	}
	if u.Name != name {
		return nil, fmt.Errorf("bad user record %s: names user %q", name, u.Name)
	}
	if err := u.validate(); err != nil {
		return nil, fmt.Errorf("bad user record: %w", err)
	}
	return &u, nil
}

// AddUser stores a new user. Every keyspace it is granted must exist. It
// returns ErrConflict (wrapped) if a user of that name exists.
func (s *Store) AddUser(ctx context.Context, u User) error {
	u.Keyspaces = normalizeGrants(u.Keyspaces)
	if err := u.validate(); err != nil {
		return err
	}
	key := s.userKey(u.Name)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	for _, ks := range u.Keyspaces {
		// Checked in the same transaction as the write, so a grant never
		// names a keyspace that did not exist when it was made.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.mapKey(ks)), ">", 0))
	}
	b, _ := json.Marshal(u)
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(b))).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if resp.Succeeded {
		return nil
	}
	if resp.Responses[0].GetResponseRange().Count > 0 {
		return errorf(ErrConflict, "user %s already exists", u.Name)
	}
	missing, err := s.missingKeyspaces(ctx, u.Keyspaces)
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if len(missing) > 0 {
		return errorf(ErrNotFound, "add user %s: keyspace %s does not exist", u.Name, strings.Join(missing, ", "))
	}
	return errorf(ErrConflict, "add user %s: the topology changed meanwhile, try again", u.Name)
}

// missingKeyspaces returns those of keyspaces that do not exist.
func (s *Store) missingKeyspaces(ctx context.Context, keyspaces []string) ([]string, error) {
	var missing []string
	for _, ks := range keyspaces {
		resp, err := s.cli.Get(ctx, s.mapKey(ks), clientv3.WithCountOnly())
		if err != nil {
			return nil, err
		}
		if resp.Count == 0 {
			missing = append(missing, ks)
		}
	}
	return missing, nil
}

// normalizeGrants sorts keyspaces and drops duplicates.
func normalizeGrants(keyspaces []string) []string {
	if len(keyspaces) == 0 {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(keyspaces)))
}

// SetVerifier replaces the verifier of user name (a password change). It
// returns ErrNotFound (wrapped) if there is no such user.
func (s *Store) SetVerifier(ctx context.Context, name, verifier string) error {
	if _, err := ParseVerifier(verifier); err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	return s.updateUser(ctx, name, "set the verifier of", "", func(u *User) bool {
		changed := u.Verifier != verifier
		u.Verifier = verifier
		return changed
	})
}

// Grant lets user name use keyspace, which must exist. Granting a keyspace
// twice is no error.
func (s *Store) Grant(ctx context.Context, name, keyspace string) error {
	if err := vschema.ValidName("keyspace", keyspace); err != nil {
		return err
	}
	return s.updateUser(ctx, name, "grant "+keyspace+" to", keyspace, func(u *User) bool {
		if slices.Contains(u.Keyspaces, keyspace) {
			return false
		}
		u.Keyspaces = normalizeGrants(append(u.Keyspaces, keyspace))
		return true
	})
}

// Revoke takes keyspace away from user name. Revoking a keyspace that was
// not granted is no error; the keyspace need not exist.
func (s *Store) Revoke(ctx context.Context, name, keyspace string) error {
	if err := vschema.ValidName("keyspace", keyspace); err != nil {
		return err
	}
	return s.updateUser(ctx, name, "revoke "+keyspace+" from", "", func(u *User) bool {
		n := len(u.Keyspaces)
		u.Keyspaces = slices.DeleteFunc(u.Keyspaces, func(ks string) bool { return ks == keyspace })
		return len(u.Keyspaces) != n
	})
}

// SetAdmin grants (admin true) or revokes the admin console to user name.
// Granting it twice, or revoking it from a user without it, is no error.
func (s *Store) SetAdmin(ctx context.Context, name string, admin bool) error {
	what := "revoke the admin console from"
	if admin {
		what = "grant the admin console to"
	}
	return s.updateUser(ctx, name, what, "", func(u *User) bool {
		changed := u.Admin != admin
		u.Admin = admin
		return changed
	})
}

// updateAttempts bounds how often updateUser retries a change that lost a
// race with another change of the same user.
const updateAttempts = 5

// updateUser reads user name, applies change and writes the result in one
// transaction guarded by the record's revision (and by the existence of
// keyspace, unless it is ""). A lost race is retried a few times; change
// reports whether it changed anything, and if not nothing is written.
func (s *Store) updateUser(ctx context.Context, name, what, keyspace string, change func(*User) bool) error {
	if err := ValidUserName("user", name); err != nil {
		return err
	}
	key := s.userKey(name)
	for range updateAttempts {
		ops := []clientv3.Op{clientv3.OpGet(key)}
		if keyspace != "" {
			ops = append(ops, clientv3.OpGet(s.mapKey(keyspace), clientv3.WithCountOnly()))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("%s user %s: %w", what, name, err)
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return errorf(ErrNotFound, "user %s does not exist", name)
		}
		if keyspace != "" && resp.Responses[1].GetResponseRange().Count == 0 {
			return errorf(ErrNotFound, "keyspace %s does not exist", keyspace)
		}
		u, err := parseUser(name, kvs[0].Value)
		if err != nil {
			return err
		}
		if !change(u) {
			return nil
		}
		if err := u.validate(); err != nil {
			return err
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)}
		if keyspace != "" {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.mapKey(keyspace)), ">", 0))
		}
		b, _ := json.Marshal(u)
		tresp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("%s user %s: %w", what, name, err)
		}
		if tresp.Succeeded {
			return nil
		}
	}
	return errorf(ErrConflict, "%s user %s: it keeps changing meanwhile, try again", what, name)
}

// RemoveUser deletes user name. It returns ErrNotFound (wrapped) if there is
// no such user.
func (s *Store) RemoveUser(ctx context.Context, name string) error {
	if err := ValidUserName("user", name); err != nil {
		return err
	}
	resp, err := s.cli.Delete(ctx, s.userKey(name))
	if err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	if resp.Deleted == 0 {
		return errorf(ErrNotFound, "user %s does not exist", name)
	}
	return nil
}

// Users returns every user of the cluster, sorted by name. A record that
// does not parse fails the whole list, naming the user (RemoveUser deletes
// it).
func (s *Store) Users(ctx context.Context) ([]User, error) {
	resp, err := s.cli.Get(ctx, s.prefix+usersDir, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]User, 0, len(resp.Kvs))
	for _, e := range resp.Kvs {
		name, ok := s.userName(string(e.Key))
		if !ok {
			continue
		}
		u, err := parseUser(name, e.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}
