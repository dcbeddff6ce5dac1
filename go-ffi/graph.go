package memsilo

import (
	"context"
	"time"
)

// Entity is a node of a namespace's knowledge graph.
type Entity struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Properties map[string]any `json:"properties"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// Relation is a directed, typed, weighted edge between two entities.
type Relation struct {
	ID         string         `json:"id"`
	Source     string         `json:"source"`
	Target     string         `json:"target"`
	SourceName string         `json:"source_name"`
	TargetName string         `json:"target_name"`
	Type       string         `json:"type"`
	Weight     float64        `json:"weight"`
	Properties map[string]any `json:"properties"`
	CreatedAt  time.Time      `json:"created_at"`
}

// Graph is a set of entities and the relations among them.
type Graph struct {
	Entities  []Entity   `json:"entities"`
	Relations []Relation `json:"relations"`
}

// Path is a shortest path: entities in order, the relations between them, and its weight.
type Path struct {
	Entities    []Entity   `json:"entities"`
	Relations   []Relation `json:"relations"`
	TotalWeight float64    `json:"total_weight"`
}

// EntityOptions are AddEntity's optional fields.
type EntityOptions struct {
	Type       string         `json:"type,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// RelationOptions are AddRelation's optional fields.
type RelationOptions struct {
	Weight     *float64       `json:"weight,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// TraversalOptions bound Neighbors and Subgraph.
type TraversalOptions struct {
	Depth *uint32 `json:"depth,omitempty"` // hops (default 1)
	Type  string  `json:"type,omitempty"`  // follow only relations of this type
}

// DeletedGraphItem confirms an entity's or relation's deletion.
type DeletedGraphItem struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Deleted bool   `json:"deleted"`
}

// AddEntity creates or updates (by name and type) an entity in ns. opts may be nil.
func (db *DB) AddEntity(ctx context.Context, ns, name string, opts *EntityOptions) (*Entity, error) {
	args := struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		*EntityOptions
	}{ns, name, opts}
	var e Entity
	if _, err := db.call(ctx, "add_entity", args, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// AddRelation adds a relation of type relType from source to target (entity ids or names).
// opts may be nil.
func (db *DB) AddRelation(ctx context.Context, ns, source, target, relType string, opts *RelationOptions) (*Relation, error) {
	args := struct {
		Namespace string `json:"namespace"`
		Source    string `json:"source"`
		Target    string `json:"target"`
		Type      string `json:"type"`
		*RelationOptions
	}{ns, source, target, relType, opts}
	var r Relation
	if _, err := db.call(ctx, "add_relation", args, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

type entityArgs struct {
	Namespace string `json:"namespace"`
	Entity    string `json:"entity"`
	Type      string `json:"type,omitempty"`
}

// GetEntity reads an entity by id or name; entityType ("" for any) picks among
// same-named entities.
func (db *DB) GetEntity(ctx context.Context, ns, entity, entityType string) (*Entity, error) {
	var e Entity
	if _, err := db.call(ctx, "get_entity", entityArgs{ns, entity, entityType}, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Neighbors returns the entities and relations within opts.Depth hops of entity. opts may be nil.
func (db *DB) Neighbors(ctx context.Context, ns, entity string, opts *TraversalOptions) (*Graph, error) {
	return db.traverse(ctx, "neighbors", ns, entity, opts)
}

// Subgraph returns the entities within opts.Depth hops of entity and every relation among
// them. opts may be nil.
func (db *DB) Subgraph(ctx context.Context, ns, entity string, opts *TraversalOptions) (*Graph, error) {
	return db.traverse(ctx, "subgraph", ns, entity, opts)
}

func (db *DB) traverse(ctx context.Context, op, ns, entity string, opts *TraversalOptions) (*Graph, error) {
	args := struct {
		Namespace string `json:"namespace"`
		Entity    string `json:"entity"`
		*TraversalOptions
	}{ns, entity, opts}
	var g Graph
	if _, err := db.call(ctx, op, args, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// ShortestPath returns the lowest-weight path between two entities (CodeNotFound if none).
func (db *DB) ShortestPath(ctx context.Context, ns, from, to string) (*Path, error) {
	args := map[string]string{"namespace": ns, "from": from, "to": to}
	var p Path
	if _, err := db.call(ctx, "shortest_path", args, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteEntity deletes an entity (by id or name) and its relations.
func (db *DB) DeleteEntity(ctx context.Context, ns, entity string) (*DeletedGraphItem, error) {
	var d DeletedGraphItem
	if _, err := db.call(ctx, "delete_entity", entityArgs{Namespace: ns, Entity: entity}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteRelation deletes a relation by id.
func (db *DB) DeleteRelation(ctx context.Context, ns, relationID string) (*DeletedGraphItem, error) {
	args := map[string]string{"namespace": ns, "id": relationID}
	var d DeletedGraphItem
	if _, err := db.call(ctx, "delete_relation", args, &d); err != nil {
		return nil, err
	}
	return &d, nil
}
