package memsilo

import (
	"context"
	"time"
)

// Access is what a namespace-scoped key may do in one namespace.
type Access string

// Namespace access levels (write implies read).
const (
	AccessRead  Access = "read"
	AccessWrite Access = "write"
)

// NamespaceGrant gives a key access to one namespace.
type NamespaceGrant struct {
	Namespace string `json:"namespace"`
	Access    Access `json:"access"`
}

// APIKey describes a key (never its secret).
type APIKey struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	Prefix     string           `json:"prefix"`
	TenantID   *string          `json:"tenant_id"`
	MemberID   *string          `json:"member_id"`
	Role       *Role            `json:"role"`
	Namespaces []NamespaceGrant `json:"namespaces"`
	CreatedAt  time.Time        `json:"created_at"`
	ExpiresAt  *time.Time       `json:"expires_at"`
	Revoked    bool             `json:"revoked"`
}

// CreatedKey is a new (or rotated) key: the only time its full text is returned.
type CreatedKey struct {
	APIKey
	Key string `json:"key"` // the full key, e.g. "msk_..."; pass it to Scoped or Connect
}

// CreateKeyRequest describes a key: either namespace grants, or a tenant role (optionally
// for a member).
type CreateKeyRequest struct {
	Name       string           `json:"name"`
	Namespaces []NamespaceGrant `json:"namespaces,omitempty"`
	TenantID   string           `json:"tenant_id,omitempty"`
	Role       Role             `json:"role,omitempty"`
	MemberID   string           `json:"member_id,omitempty"`
	ExpiresAt  *time.Time       `json:"expires_at,omitempty"`
}

// KeyList is one page of keys and the total over all pages.
type KeyList struct {
	Keys       []APIKey
	TotalCount uint64
}

type keyArgs struct {
	KeyID string `json:"key_id"`
}

// CreateKey issues a key.
func (db *DB) CreateKey(ctx context.Context, req CreateKeyRequest) (*CreatedKey, error) {
	return db.createdKeyCall(ctx, "create_key", req)
}

// ListKeys lists the keys the caller may see. opts may be nil.
func (db *DB) ListKeys(ctx context.Context, opts *ListOptions) (*KeyList, error) {
	var list KeyList
	got, err := db.call(ctx, "list_keys", orEmpty(opts), &list.Keys)
	if err != nil {
		return nil, err
	}
	list.TotalCount = deref(got.TotalCount)
	return &list, nil
}

// RevokeKey revokes a key, effective at once for every handle using it.
func (db *DB) RevokeKey(ctx context.Context, keyID string) (*APIKey, error) {
	var k APIKey
	if _, err := db.call(ctx, "revoke_key", keyArgs{keyID}, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// ListNamespaceKeys lists the live keys granted namespace (one page). opts may be nil.
func (db *DB) ListNamespaceKeys(ctx context.Context, namespace string, opts *ListOptions) (*KeyList, error) {
	args := struct {
		ListOptions
		Namespace string `json:"namespace"`
	}{Namespace: namespace}
	if opts != nil {
		args.ListOptions = *opts
	}
	var list KeyList
	got, err := db.call(ctx, "list_keys", args, &list.Keys)
	if err != nil {
		return nil, err
	}
	list.TotalCount = deref(got.TotalCount)
	return &list, nil
}

// RevokeNamespaceKey revokes a key granted namespace; any other key is CodeNotFound.
func (db *DB) RevokeNamespaceKey(ctx context.Context, namespace, keyID string) (*APIKey, error) {
	var k APIKey
	args := map[string]string{"key_id": keyID, "namespace": namespace}
	if _, err := db.call(ctx, "revoke_key", args, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// RotateKey replaces a key's secret; the old text stops working.
func (db *DB) RotateKey(ctx context.Context, keyID string) (*CreatedKey, error) {
	return db.createdKeyCall(ctx, "rotate_key", keyArgs{keyID})
}

func (db *DB) createdKeyCall(ctx context.Context, op string, args any) (*CreatedKey, error) {
	var k CreatedKey
	if _, err := db.call(ctx, op, args, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Identity describes the principal a DB acts as.
type Identity struct {
	Principal  string           `json:"principal"` // "root", "member" or "scoped"
	KeyID      string           `json:"key_id,omitempty"`
	TenantID   *string          `json:"tenant_id,omitempty"`
	Role       Role             `json:"role,omitempty"`
	Namespaces []NamespaceGrant `json:"namespaces,omitempty"`
}

// WhoAmI describes the caller.
func (db *DB) WhoAmI(ctx context.Context) (*Identity, error) {
	var id Identity
	if _, err := db.call(ctx, "whoami", nil, &id); err != nil {
		return nil, err
	}
	return &id, nil
}
