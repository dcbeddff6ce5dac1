package memsilo

import (
	"context"
	"time"
)

// IsolationMode is how a tenant's data is laid out on disk.
type IsolationMode string

// Isolation modes (see docs/src/api/tenants.md).
const (
	IsolationLogical  IsolationMode = "logical"  // shared environment, id-prefixed keys (default)
	IsolationHybrid   IsolationMode = "hybrid"   // one environment per tenant
	IsolationPhysical IsolationMode = "physical" // one environment per namespace
)

// DecayPolicy is a namespace's memory policy.
type DecayPolicy struct {
	DecayRate     float64 `json:"decay_rate"`            // how fast effective importance falls
	MinImportance float64 `json:"min_importance"`        // below this a memory is no longer recalled
	TTLDefault    *uint64 `json:"ttl_default,omitempty"` // seconds; nil: memories do not expire
}

// Namespace describes one namespace.
type Namespace struct {
	Name          string        `json:"name"`
	TenantID      *string       `json:"tenant_id"`
	CreatedAt     time.Time     `json:"created_at"`
	MemoryCount   uint64        `json:"memory_count"`
	StorageBytes  uint64        `json:"storage_bytes"`
	IsolationMode IsolationMode `json:"isolation_mode"`
	Policy        *DecayPolicy  `json:"policy,omitempty"`
	Dimensions    *uint32       `json:"dimensions,omitempty"`
	Embedder      *string       `json:"embedder,omitempty"`
	EntityCount   uint64        `json:"entity_count"`
	RelationCount uint64        `json:"relation_count"`
}

// NamespaceOptions are CreateNamespace's optional settings.
type NamespaceOptions struct {
	TenantID   string       `json:"tenant_id,omitempty"`  // owning tenant
	Policy     *DecayPolicy `json:"policy,omitempty"`     // memory policy
	Dimensions *uint32      `json:"dimensions,omitempty"` // vector size (set by the first vector if nil)
	ExistOK    bool         `json:"exist_ok,omitempty"`   // return the existing namespace instead of CodeConflict
}

// ListOptions page through namespaces and keys.
type ListOptions struct {
	TenantID string  `json:"tenant_id,omitempty"` // only this tenant's
	Offset   *uint64 `json:"offset,omitempty"`    // items to skip (not with Cursor)
	Limit    *uint64 `json:"limit,omitempty"`     // default 50, at most 100
	// Cursor is the NextCursor of the previous page of ListNamespaces: the page starts after
	// it, at the same cost however deep (keys are paged by Offset only).
	Cursor string `json:"cursor,omitempty"`
}

// NamespaceList is one page of namespaces, the total over all pages and where the next page
// starts (empty on the last page).
type NamespaceList struct {
	Namespaces []Namespace
	TotalCount uint64
	NextCursor string
}

// DeletedNamespace confirms a namespace deletion.
type DeletedNamespace struct {
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
}

// CreateNamespace creates a namespace (name: 1–128 of [A-Za-z0-9_.-]). opts may be nil.
func (db *DB) CreateNamespace(ctx context.Context, name string, opts *NamespaceOptions) (*Namespace, error) {
	args := struct {
		Name string `json:"name"`
		*NamespaceOptions
	}{name, opts}
	var ns Namespace
	if _, err := db.call(ctx, "create_namespace", args, &ns); err != nil {
		return nil, err
	}
	return &ns, nil
}

// ListNamespaces lists the namespaces the caller may see. opts may be nil.
func (db *DB) ListNamespaces(ctx context.Context, opts *ListOptions) (*NamespaceList, error) {
	var list NamespaceList
	got, err := db.call(ctx, "list_namespaces", orEmpty(opts), &list.Namespaces)
	if err != nil {
		return nil, err
	}
	list.TotalCount = deref(got.TotalCount)
	if got.NextCursor != nil {
		list.NextCursor = *got.NextCursor
	}
	return &list, nil
}

// GetNamespace describes one namespace.
func (db *DB) GetNamespace(ctx context.Context, name string) (*Namespace, error) {
	var ns Namespace
	if _, err := db.call(ctx, "get_namespace", map[string]string{"name": name}, &ns); err != nil {
		return nil, err
	}
	return &ns, nil
}

// DeleteNamespace deletes a namespace and all its data, atomically and at once.
func (db *DB) DeleteNamespace(ctx context.Context, name string) (*DeletedNamespace, error) {
	var d DeletedNamespace
	if _, err := db.call(ctx, "delete_namespace", map[string]string{"name": name}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// GetMemoryPolicy reads a namespace's decay policy.
func (db *DB) GetMemoryPolicy(ctx context.Context, namespace string) (*DecayPolicy, error) {
	var p DecayPolicy
	if _, err := db.call(ctx, "get_memory_policy", map[string]string{"namespace": namespace}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetMemoryPolicy replaces a namespace's decay policy and returns it.
func (db *DB) SetMemoryPolicy(ctx context.Context, namespace string, policy DecayPolicy) (*DecayPolicy, error) {
	args := struct {
		Namespace string      `json:"namespace"`
		Policy    DecayPolicy `json:"policy"`
	}{namespace, policy}
	var p DecayPolicy
	if _, err := db.call(ctx, "set_memory_policy", args, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// orEmpty passes a nil options pointer as an empty object.
func orEmpty[T any](opts *T) any {
	if opts == nil {
		return struct{}{}
	}
	return opts
}

func deref(n *uint64) uint64 {
	if n == nil {
		return 0
	}
	return *n
}

// Ptr returns a pointer to v, for optional fields: Importance: memsilo.Ptr(0.9).
func Ptr[T any](v T) *T { return &v }
