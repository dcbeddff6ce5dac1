package memsilo

import (
	"context"
	"time"
)

// AuditActor is who made a recorded request. Principal is root, member, scoped or
// anonymous (no usable key); the key's secret is never recorded.
type AuditActor struct {
	Principal string  `json:"principal"`
	KeyID     *string `json:"key_id"`
	KeyPrefix *string `json:"key_prefix"`
	MemberID  *string `json:"member_id"`
}

// AuditEntry is one entry of a tenant's audit log. Hash chains it to PrevHash, the hash
// of the entry before it.
type AuditEntry struct {
	Seq       uint64     `json:"seq"`
	Time      time.Time  `json:"time"`
	TenantID  string     `json:"tenant_id"`
	Actor     AuditActor `json:"actor"`
	Action    string     `json:"action"`
	Target    *string    `json:"target"`
	Result    string     `json:"result"` // ok, refused (401/403/429) or failed
	Error     *Code      `json:"error"`
	Status    int        `json:"status"`
	RequestID string     `json:"request_id"`
	PrevHash  string     `json:"prev_hash"`
	Hash      string     `json:"hash"`
}

// AuditPage is one page of ListAudit; pass NextCursor as Cursor for the next.
type AuditPage struct {
	TenantID   string       `json:"tenant_id"`
	Entries    []AuditEntry `json:"entries"`
	NextCursor *string      `json:"next_cursor"`
}

// ListAuditOptions filter and page ListAudit. Actor matches a key id, key prefix or
// member id.
type ListAuditOptions struct {
	Since  *time.Time `json:"since,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
	Actor  string     `json:"actor,omitempty"`
	Action string     `json:"action,omitempty"`
	Cursor string     `json:"cursor,omitempty"`
	Limit  *uint64    `json:"limit,omitempty"`
}

// BrokenEntry names the first audit entry that does not verify.
type BrokenEntry struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// AuditVerification is the result of VerifyAudit.
type AuditVerification struct {
	TenantID    string       `json:"tenant_id"`
	OK          bool         `json:"ok"`
	Checked     uint64       `json:"checked"`
	FirstBroken *BrokenEntry `json:"first_broken"`
	HeadSeq     uint64       `json:"head_seq"`
	HeadHash    string       `json:"head_hash"`
}

// InstanceAudit is the tenant id of the instance log (events of no tenant; root only).
const InstanceAudit = "instance"

// ListAudit returns a tenant's audit entries, oldest first (root, or the tenant's admins).
// opts may be nil.
func (db *DB) ListAudit(ctx context.Context, tenantID string, opts *ListAuditOptions) (*AuditPage, error) {
	args := struct {
		tenantArgs
		*ListAuditOptions
	}{tenantArgs{tenantID}, opts}
	var page AuditPage
	if _, err := db.call(ctx, "list_audit", args, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// VerifyAudit checks a tenant's audit hash chain and names the first edited or missing entry.
func (db *DB) VerifyAudit(ctx context.Context, tenantID string) (*AuditVerification, error) {
	var v AuditVerification
	if _, err := db.call(ctx, "verify_audit", tenantArgs{tenantID}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
