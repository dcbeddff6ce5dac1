package memsilo

import (
	"context"
	"time"
)

// Memory is one stored memory.
type Memory struct {
	ID         string         `json:"id"`
	Namespace  string         `json:"namespace"`
	AgentID    *string        `json:"agent_id"`
	Content    string         `json:"content"`
	Importance float64        `json:"importance"`
	Tags       []string       `json:"tags"`
	Metadata   map[string]any `json:"metadata"`
	Entities   []string       `json:"entities,omitempty"`
	MemoryType MemoryType     `json:"memory_type"`
	SessionID  *string        `json:"session_id"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
	ExpiresAt  *time.Time     `json:"expires_at"`
	Vector     []float32      `json:"vector,omitempty"` // only from GetMemories with includeVectors
}

// MemoryType is the kind of a memory.
type MemoryType string

// The memory types.
const (
	Episodic   MemoryType = "episodic"
	Semantic   MemoryType = "semantic"
	Procedural MemoryType = "procedural"
	Working    MemoryType = "working"
)

// StoreMemoryRequest is one memory to store. Only Content is required. An ID already
// stored in the namespace is replaced (its CreatedAt kept).
type StoreMemoryRequest struct {
	ID         string         `json:"id,omitempty"` // 1-256 printable characters; default a new UUID v7
	Content    string         `json:"content"`
	Importance *float64       `json:"importance,omitempty"` // in [0, 1]; default 0.5
	Tags       []string       `json:"tags,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	AgentID    string         `json:"agent_id,omitempty"`  // a label inside the namespace (e.g. one end customer)
	TTL        *uint64        `json:"ttl,omitempty"`       // seconds until it expires
	Embedding  []float32      `json:"embedding,omitempty"` // your own vector (else the built-in embedder)
	Entities   []string       `json:"entities,omitempty"`  // knowledge-graph entities it mentions
	MemoryType MemoryType     `json:"memory_type,omitempty"`
	SessionID  string         `json:"session_id,omitempty"`
}

// UpdateMemoryRequest holds the fields of a memory to change; nil/empty ones stay as stored.
type UpdateMemoryRequest struct {
	Content    *string        `json:"content,omitempty"` // re-embedded
	Embedding  []float32      `json:"embedding,omitempty"`
	Importance *float64       `json:"importance,omitempty"`
	Tags       []string       `json:"tags,omitempty"`     // replaces the tags
	Metadata   map[string]any `json:"metadata,omitempty"` // merged key by key (nil values remove keys) unless Replace
	Replace    bool           `json:"replace,omitempty"`
	TTL        *uint64        `json:"ttl,omitempty"` // seconds from now
	MemoryType MemoryType     `json:"memory_type,omitempty"`
	SessionID  *string        `json:"session_id,omitempty"`
}

// RecallRequest asks for the memories closest to a query text or vector.
type RecallRequest struct {
	Query         string     `json:"query,omitempty"`
	Vector        []float32  `json:"vector,omitempty"`
	TopK          int        `json:"top_k,omitempty"` // default 10
	AgentID       string     `json:"agent_id,omitempty"`
	Tags          []string   `json:"tags,omitempty"`
	MinImportance *float64   `json:"min_importance,omitempty"`
	Since         *time.Time `json:"since,omitempty"`
	Until         *time.Time `json:"until,omitempty"`
	Expand        *uint32    `json:"expand,omitempty"` // also follow the knowledge graph this many hops
	// Mode is "vector", "keyword" (BM25) or "hybrid" (both, fused); default hybrid for a
	// text query, vector for a vector query.
	Mode string `json:"mode,omitempty"`
	// VectorWeight (hybrid only, in [0, 1]) is the vector score's weight in the fused sum (both
	// scores scaled to [0, 1] over the candidates); default 0.6.
	VectorWeight *float64   `json:"vector_weight,omitempty"`
	Filter       Filter     `json:"filter,omitempty"` // only memories matching this filter
	MemoryType   MemoryType `json:"memory_type,omitempty"`
	SessionID    string     `json:"session_id,omitempty"`
}

// Filter is a filter of the filter language: fields (agent_id, session_id, memory_type, tags,
// importance, created_at, updated_at, id, "metadata.<path>") and $and/$or/$not, with operator
// objects such as {"$gte": 0.5} or plain values for equality.
type Filter map[string]any

// OrderBy is the order of ListMemories.
type OrderBy string

// The orders of ListMemories.
const (
	ByCreatedAt  OrderBy = "created_at"
	ByUpdatedAt  OrderBy = "updated_at"
	ByImportance OrderBy = "importance"
)

// ListMemoriesRequest selects one page of ListMemories.
type ListMemoriesRequest struct {
	Filter         Filter  `json:"filter,omitempty"`
	OrderBy        OrderBy `json:"order_by,omitempty"` // default ByCreatedAt
	Descending     bool    `json:"descending,omitempty"`
	Limit          int     `json:"limit,omitempty"`  // 1 to 1000, default 100
	Cursor         string  `json:"cursor,omitempty"` // NextCursor of the previous page
	IncludeVectors bool    `json:"include_vectors,omitempty"`
}

// MemoryPage is one page of ListMemories; NextCursor is nil on the last page.
type MemoryPage struct {
	Memories   []Memory `json:"memories"`
	NextCursor *string  `json:"next_cursor"`
}

// RecallHit is one recalled memory with its score.
type RecallHit struct {
	ID                  string         `json:"id"`
	Content             string         `json:"content"`
	Score               float64        `json:"score"`
	Similarity          float64        `json:"similarity"`
	Importance          float64        `json:"importance"`
	EffectiveImportance float64        `json:"effective_importance"`
	AgentID             *string        `json:"agent_id"`
	Tags                []string       `json:"tags"`
	Metadata            map[string]any `json:"metadata"`
	MemoryType          MemoryType     `json:"memory_type"`
	SessionID           *string        `json:"session_id"`
	CreatedAt           time.Time      `json:"created_at"`
	UpdatedAt           time.Time      `json:"updated_at"`
	ViaGraph            bool           `json:"via_graph,omitempty"`
	KeywordScore        *float64       `json:"keyword_score"` // BM25 (keyword and hybrid recall)
	VectorScore         *float64       `json:"vector_score"`  // cosine similarity (vector and hybrid recall)
}

// ForgetRequest selects memories to forget; at least one filter is required (an empty
// filter is CodeInvalidArgument, never "delete all").
type ForgetRequest struct {
	IDs             []string   `json:"ids,omitempty"`
	AgentID         string     `json:"agent_id,omitempty"`
	Tags            []string   `json:"tags,omitempty"`
	Before          *time.Time `json:"before,omitempty"`
	BelowImportance *float64   `json:"below_importance,omitempty"`
	Filter          Filter     `json:"filter,omitempty"`
}

// DeletedMemory confirms a memory's deletion.
type DeletedMemory struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	Deleted   bool   `json:"deleted"`
}

// nsField is the optional namespace of memory calls: "" lets a key with exactly one
// namespace address it implicitly.
type nsField struct {
	Namespace string `json:"namespace,omitempty"`
}

// StoreMemory stores one memory in namespace ns.
func (db *DB) StoreMemory(ctx context.Context, ns string, req StoreMemoryRequest) (*Memory, error) {
	args := struct {
		nsField
		StoreMemoryRequest
	}{nsField{ns}, req}
	var m Memory
	if _, err := db.call(ctx, "store_memory", args, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// StoreMemories stores a batch, all or nothing, and returns the new ids in order.
func (db *DB) StoreMemories(ctx context.Context, ns string, memories []StoreMemoryRequest) ([]string, error) {
	if memories == nil {
		memories = []StoreMemoryRequest{}
	}
	args := struct {
		Namespace string               `json:"namespace"`
		Memories  []StoreMemoryRequest `json:"memories"`
	}{ns, memories}
	var out struct {
		IDs []string `json:"ids"`
	}
	if _, err := db.call(ctx, "store_memories", args, &out); err != nil {
		return nil, err
	}
	return out.IDs, nil
}

// Recall returns the memories of ns closest to req.Query or req.Vector, best first.
// A request with only a Vector (and TopK) passes the floats to the engine without JSON.
func (db *DB) Recall(ctx context.Context, ns string, req RecallRequest) ([]RecallHit, error) {
	hits := []RecallHit{}
	var err error
	if req.Vector != nil && isVectorOnly(req) {
		err = db.recallVector(ctx, ns, req.Vector, req.TopK, &hits)
	} else {
		args := struct {
			nsField
			RecallRequest
		}{nsField{ns}, req}
		_, err = db.call(ctx, "recall", args, &hits)
	}
	if err != nil {
		return nil, err
	}
	return hits, nil
}

func isVectorOnly(req RecallRequest) bool {
	req.Vector, req.TopK = nil, 0
	return req.Query == "" && req.AgentID == "" && req.Tags == nil && req.MinImportance == nil &&
		req.Since == nil && req.Until == nil && req.Expand == nil && req.Mode == "" &&
		req.VectorWeight == nil && req.Filter == nil && req.MemoryType == "" && req.SessionID == ""
}

type memoryArgs struct {
	nsField
	ID string `json:"id"`
}

// GetMemory reads one memory by id.
func (db *DB) GetMemory(ctx context.Context, ns, id string) (*Memory, error) {
	var m Memory
	if _, err := db.call(ctx, "get_memory", memoryArgs{nsField{ns}, id}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// GetMemories reads the memories of ids (at most 1000) in that order; absent ids are left
// out. With includeVectors each memory carries its stored Vector.
func (db *DB) GetMemories(ctx context.Context, ns string, ids []string, includeVectors bool) ([]Memory, error) {
	if ids == nil {
		ids = []string{}
	}
	args := struct {
		nsField
		IDs            []string `json:"ids"`
		IncludeVectors bool     `json:"include_vectors,omitempty"`
	}{nsField{ns}, ids, includeVectors}
	var out struct {
		Memories []Memory `json:"memories"`
	}
	if _, err := db.call(ctx, "get_memories", args, &out); err != nil {
		return nil, err
	}
	return out.Memories, nil
}

// UpdateMemory changes the given fields of memory id (CodeNotFound if absent).
func (db *DB) UpdateMemory(ctx context.Context, ns, id string, req UpdateMemoryRequest) (*Memory, error) {
	args := struct {
		nsField
		ID string `json:"id"`
		UpdateMemoryRequest
	}{nsField{ns}, id, req}
	var m Memory
	if _, err := db.call(ctx, "update_memory", args, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// DeleteMemory deletes one memory by id.
func (db *DB) DeleteMemory(ctx context.Context, ns, id string) (*DeletedMemory, error) {
	var d DeletedMemory
	if _, err := db.call(ctx, "delete_memory", memoryArgs{nsField{ns}, id}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// BatchForget deletes the memories of ns matching every filter given; returns how many.
func (db *DB) BatchForget(ctx context.Context, ns string, req ForgetRequest) (uint64, error) {
	args := struct {
		nsField
		ForgetRequest
	}{nsField{ns}, req}
	var out struct {
		Forgotten uint64 `json:"forgotten"`
	}
	if _, err := db.call(ctx, "batch_forget", args, &out); err != nil {
		return 0, err
	}
	return out.Forgotten, nil
}

// ListMemories returns one page of the memories of ns matching req.Filter, in a stable order.
func (db *DB) ListMemories(ctx context.Context, ns string, req ListMemoriesRequest) (*MemoryPage, error) {
	args := struct {
		nsField
		ListMemoriesRequest
	}{nsField{ns}, req}
	var page MemoryPage
	if _, err := db.call(ctx, "list_memories", args, &page); err != nil {
		return nil, err
	}
	if page.Memories == nil {
		page.Memories = []Memory{}
	}
	return &page, nil
}

// CountMemories counts the live memories of ns matching filter (all of them when nil).
func (db *DB) CountMemories(ctx context.Context, ns string, filter Filter) (uint64, error) {
	args := struct {
		nsField
		Filter Filter `json:"filter,omitempty"`
	}{nsField{ns}, filter}
	var out struct {
		Count uint64 `json:"count"`
	}
	if _, err := db.call(ctx, "count_memories", args, &out); err != nil {
		return 0, err
	}
	return out.Count, nil
}
