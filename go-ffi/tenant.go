package memsilo

import (
	"context"
	"time"
)

// TenantStatus is a tenant's lifecycle state.
type TenantStatus string

// Tenant states.
const (
	StatusActive       TenantStatus = "active"
	StatusProvisioning TenantStatus = "provisioning"
	StatusSuspended    TenantStatus = "suspended" // its keys get CodeForbidden
	StatusDeleting     TenantStatus = "deleting"
	StatusDeleted      TenantStatus = "deleted"
)

// Role is a member's (and a member key's) role in a tenant.
type Role string

// Member roles.
const (
	RoleAdmin  Role = "admin"  // read, write and manage the tenant
	RoleEditor Role = "editor" // read and write its namespaces
	RoleViewer Role = "viewer" // read its namespaces
)

// Quotas are a tenant's limits.
type Quotas struct {
	StorageQuotaBytes uint64  `json:"storage_quota_bytes"`
	QPSLimit          uint32  `json:"qps_limit"`
	MaxConnections    uint32  `json:"max_connections"`
	ComputeQuotaCores float64 `json:"compute_quota_cores"`
	MaxMembers        uint32  `json:"max_members"`
	MaxNamespaces     uint32  `json:"max_namespaces"`
}

// QuotasPatch sets some quotas; nil fields keep their current (or default) value.
type QuotasPatch struct {
	StorageQuotaBytes *uint64  `json:"storage_quota_bytes,omitempty"`
	QPSLimit          *uint32  `json:"qps_limit,omitempty"`
	MaxConnections    *uint32  `json:"max_connections,omitempty"`
	ComputeQuotaCores *float64 `json:"compute_quota_cores,omitempty"`
	MaxMembers        *uint32  `json:"max_members,omitempty"`
	MaxNamespaces     *uint32  `json:"max_namespaces,omitempty"`
}

// TenantUsage is what a tenant uses now.
type TenantUsage struct {
	StorageBytes uint64 `json:"storage_bytes"`
	Namespaces   uint64 `json:"namespaces"`
	Members      uint64 `json:"members"`
}

// Tenant describes a tenant.
type Tenant struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Status        TenantStatus   `json:"status"`
	IsolationMode IsolationMode  `json:"isolation_mode"`
	ParentID      *string        `json:"parent_id"`
	Settings      map[string]any `json:"settings"`
	Features      any            `json:"features"`
	Tags          any            `json:"tags"`
	Quotas        Quotas         `json:"quotas"`
	// EncryptionKeyID is the tenant's own encryption key (physical and hybrid tenants), or nil.
	EncryptionKeyID *string      `json:"encryption_key_id"`
	CreatedAt       time.Time    `json:"created_at"`
	UpdatedAt       time.Time    `json:"updated_at"`
	Usage           *TenantUsage `json:"usage,omitempty"`
	Message         string       `json:"message,omitempty"`    // set by create, update and delete
	DeletedAt       *time.Time   `json:"deleted_at,omitempty"` // set by delete
}

// TenantOptions are CreateTenant's optional settings.
type TenantOptions struct {
	Quotas        *QuotasPatch   `json:"quotas,omitempty"`
	IsolationMode IsolationMode  `json:"isolation_mode,omitempty"`
	ParentID      string         `json:"parent_id,omitempty"`
	Settings      map[string]any `json:"settings,omitempty"`
	Features      any            `json:"features,omitempty"`
	Tags          any            `json:"tags,omitempty"`
	// EncryptionKeyID gives a physical or hybrid tenant a key of its own (needs a keyring):
	// created in the keyring if absent, destroyed when the tenant is deleted.
	EncryptionKeyID string `json:"encryption_key_id,omitempty"`
}

// TenantUpdate changes some of a tenant's fields; unset fields are kept.
type TenantUpdate struct {
	Name     string         `json:"name,omitempty"`
	Status   TenantStatus   `json:"status,omitempty"`
	Quotas   *QuotasPatch   `json:"quotas,omitempty"`
	Settings map[string]any `json:"settings,omitempty"`
	Features any            `json:"features,omitempty"`
	Tags     any            `json:"tags,omitempty"`
}

// ListTenantsOptions filter and page ListTenants.
type ListTenantsOptions struct {
	Status   TenantStatus `json:"status,omitempty"`
	ParentID string       `json:"parent_id,omitempty"`
	Offset   *uint64      `json:"offset,omitempty"`
	Limit    *uint64      `json:"limit,omitempty"`
}

// TenantList is one page of tenants.
type TenantList struct {
	Tenants    []Tenant `json:"tenants"`
	TotalCount uint64   `json:"total_count"`
	Offset     uint64   `json:"offset"`
	Limit      uint64   `json:"limit"`
}

// Member is a user's membership in a tenant.
type Member struct {
	TenantID       string         `json:"tenant_id"`
	MemberID       string         `json:"member_id"`
	UserIdentifier string         `json:"user_identifier"`
	Role           Role           `json:"role"`
	Metadata       map[string]any `json:"metadata"`
	AddedAt        time.Time      `json:"added_at"`
	Message        string         `json:"message,omitempty"`
}

// ListMembersOptions filter and page ListMembers.
type ListMembersOptions struct {
	Role   Role    `json:"role,omitempty"`
	Offset *uint64 `json:"offset,omitempty"`
	Limit  *uint64 `json:"limit,omitempty"`
}

// MemberList is one page of a tenant's members.
type MemberList struct {
	TenantID   string   `json:"tenant_id"`
	Members    []Member `json:"members"`
	TotalCount uint64   `json:"total_count"`
}

// RemovedMember confirms a member's removal (its keys are revoked).
type RemovedMember struct {
	TenantID  string    `json:"tenant_id"`
	MemberID  string    `json:"member_id"`
	Message   string    `json:"message"`
	RemovedAt time.Time `json:"removed_at"`
}

type tenantArgs struct {
	TenantID string `json:"tenant_id"`
}

// CreateTenant creates a tenant (name: 3–64 of [A-Za-z0-9_]). opts may be nil.
func (db *DB) CreateTenant(ctx context.Context, name string, opts *TenantOptions) (*Tenant, error) {
	args := struct {
		Name string `json:"name"`
		*TenantOptions
	}{name, opts}
	return db.tenantCall(ctx, "create_tenant", args)
}

// GetTenant describes a tenant, with its usage.
func (db *DB) GetTenant(ctx context.Context, tenantID string) (*Tenant, error) {
	return db.tenantCall(ctx, "get_tenant", tenantArgs{tenantID})
}

// ListTenants lists tenants. opts may be nil.
func (db *DB) ListTenants(ctx context.Context, opts *ListTenantsOptions) (*TenantList, error) {
	var list TenantList
	if _, err := db.call(ctx, "list_tenants", orEmpty(opts), &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// UpdateTenant changes some of a tenant's fields.
func (db *DB) UpdateTenant(ctx context.Context, tenantID string, update TenantUpdate) (*Tenant, error) {
	args := struct {
		tenantArgs
		TenantUpdate
	}{tenantArgs{tenantID}, update}
	return db.tenantCall(ctx, "update_tenant", args)
}

// DeleteTenant deletes a tenant with its namespaces, keys and members (CodeConflict if it
// has child tenants).
func (db *DB) DeleteTenant(ctx context.Context, tenantID string) (*Tenant, error) {
	return db.tenantCall(ctx, "delete_tenant", tenantArgs{tenantID})
}

// KeyRotation is a tenant's key rotation and its progress.
type KeyRotation struct {
	TenantID          string     `json:"tenant_id"`
	OldKeyID          *string    `json:"old_key_id"` // nil: the instance key
	NewKeyID          string     `json:"new_key_id"`
	State             string     `json:"state"` // "rewriting" or "done"
	EnvironmentsTotal uint64     `json:"environments_total"`
	EnvironmentsDone  uint64     `json:"environments_done"`
	StartedAt         time.Time  `json:"started_at"`
	FinishedAt        *time.Time `json:"finished_at"`
}

// RotateTenantKey rotates a physical or hybrid tenant's encryption key to newKeyID (made in
// the keyring if absent; "" for the default "<tenant name>.<ms>"): new data is written under
// it at once and the tenant's files are rewritten under it in the background, then the old
// key is destroyed. Poll GetKeyRotation for progress. Root and the tenant's admins only.
func (db *DB) RotateTenantKey(ctx context.Context, tenantID, newKeyID string) (*KeyRotation, error) {
	args := struct {
		TenantID string `json:"tenant_id"`
		NewKeyID string `json:"new_key_id,omitempty"`
	}{tenantID, newKeyID}
	var r KeyRotation
	if _, err := db.call(ctx, "rotate_tenant_key", args, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetKeyRotation is the tenant's last key rotation (CodeNotFound if none).
func (db *DB) GetKeyRotation(ctx context.Context, tenantID string) (*KeyRotation, error) {
	var r KeyRotation
	if _, err := db.call(ctx, "get_key_rotation", tenantArgs{tenantID}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// InstanceKeyRotation is the instance key's rotation and its progress.
type InstanceKeyRotation struct {
	OldKeyID          string     `json:"old_key_id"`
	NewKeyID          string     `json:"new_key_id"`
	State             string     `json:"state"` // "rewriting" or "done"
	EnvironmentsTotal uint64     `json:"environments_total"`
	EnvironmentsDone  uint64     `json:"environments_done"`
	StartedAt         time.Time  `json:"started_at"`
	FinishedAt        *time.Time `json:"finished_at"`
}

// RotateInstanceKey rotates the instance key (the key of the catalog, the audit log, logical
// tenants' files and the files of tenants without a key of their own) to newKeyID (made in the
// keyring if absent; "" for the default "instance.<ms>"): new files are written under it at
// once and every file under the old key is rewritten in the background, the catalog last,
// then the old key is destroyed. Poll GetInstanceKeyRotation for progress. Root only.
func (db *DB) RotateInstanceKey(ctx context.Context, newKeyID string) (*InstanceKeyRotation, error) {
	args := struct {
		NewKeyID string `json:"new_key_id,omitempty"`
	}{newKeyID}
	var r InstanceKeyRotation
	if _, err := db.call(ctx, "rotate_instance_key", args, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetInstanceKeyRotation is the instance key's last rotation (CodeNotFound if none). Root only.
func (db *DB) GetInstanceKeyRotation(ctx context.Context) (*InstanceKeyRotation, error) {
	var r InstanceKeyRotation
	if _, err := db.call(ctx, "get_instance_key_rotation", struct{}{}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (db *DB) tenantCall(ctx context.Context, op string, args any) (*Tenant, error) {
	var t Tenant
	if _, err := db.call(ctx, op, args, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// AddMember adds a user to a tenant with a role. metadata may be nil.
func (db *DB) AddMember(ctx context.Context, tenantID, userIdentifier string, role Role, metadata map[string]any) (*Member, error) {
	args := struct {
		TenantID       string         `json:"tenant_id"`
		UserIdentifier string         `json:"user_identifier"`
		Role           Role           `json:"role"`
		Metadata       map[string]any `json:"metadata,omitempty"`
	}{tenantID, userIdentifier, role, metadata}
	var m Member
	if _, err := db.call(ctx, "add_member", args, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// ListMembers lists a tenant's members. opts may be nil.
func (db *DB) ListMembers(ctx context.Context, tenantID string, opts *ListMembersOptions) (*MemberList, error) {
	args := struct {
		tenantArgs
		*ListMembersOptions
	}{tenantArgs{tenantID}, opts}
	var list MemberList
	if _, err := db.call(ctx, "list_members", args, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// RemoveMember removes a member from a tenant and revokes its keys.
func (db *DB) RemoveMember(ctx context.Context, tenantID, memberID string) (*RemovedMember, error) {
	args := map[string]string{"tenant_id": tenantID, "member_id": memberID}
	var r RemovedMember
	if _, err := db.call(ctx, "remove_member", args, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
