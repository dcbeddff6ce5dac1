package memsilo

import (
	"testing"
)

func TestKnowledgeGraph(t *testing.T) {
	db := openTemp(t)
	of(db.CreateNamespace(bg, "kg", nil)).must(t)
	of(db.CreateNamespace(bg, "other", nil)).must(t)

	acme := of(db.AddEntity(bg, "kg", "Acme", &EntityOptions{Type: "org", Properties: map[string]any{"hq": "Berlin"}})).must(t)
	if acme.ID == "" || acme.Type != "org" || acme.Properties["hq"] != "Berlin" {
		t.Fatalf("entity: %+v", acme)
	}
	// Upsert by name and type: the same entity, updated.
	again := of(db.AddEntity(bg, "kg", "Acme", &EntityOptions{Type: "org", Properties: map[string]any{"hq": "Paris"}})).must(t)
	if again.ID != acme.ID || again.Properties["hq"] != "Paris" {
		t.Fatalf("upsert: %+v", again)
	}
	of(db.AddEntity(bg, "kg", "Alice", &EntityOptions{Type: "person"})).must(t)
	of(db.AddEntity(bg, "kg", "Bob", nil)).must(t)
	worksAt := of(db.AddRelation(bg, "kg", "Alice", "Acme", "works_at", nil)).must(t)
	if worksAt.SourceName != "Alice" || worksAt.TargetName != "Acme" || worksAt.Type != "works_at" {
		t.Fatalf("relation: %+v", worksAt)
	}
	of(db.AddRelation(bg, "kg", "Bob", "Alice", "knows", &RelationOptions{Weight: ptr(2.0)})).must(t)

	got := of(db.GetEntity(bg, "kg", "Acme", "org")).must(t)
	if got.ID != acme.ID {
		t.Fatalf("get entity: %+v", got)
	}
	near := of(db.Neighbors(bg, "kg", "Acme", nil)).must(t)
	if names := entityNames(near.Entities); !names["Alice"] || names["Bob"] {
		t.Fatalf("depth-1 neighbors of Acme: %v", names)
	}
	far := of(db.Neighbors(bg, "kg", "Acme", &TraversalOptions{Depth: ptr[uint32](2)})).must(t)
	if names := entityNames(far.Entities); !names["Alice"] || !names["Bob"] {
		t.Fatalf("depth-2 neighbors of Acme: %v", names)
	}
	sub := of(db.Subgraph(bg, "kg", "Alice", nil)).must(t)
	if len(sub.Relations) != 2 {
		t.Fatalf("subgraph around Alice: %+v", sub)
	}
	path := of(db.ShortestPath(bg, "kg", "Bob", "Acme")).must(t)
	if len(path.Entities) != 3 || path.Entities[0].Name != "Bob" || path.Entities[2].Name != "Acme" || path.TotalWeight != 3 {
		t.Fatalf("path: %+v", path)
	}

	// The graph is per namespace.
	_, err := db.GetEntity(bg, "other", "Acme", "")
	wantCode(t, err, CodeNotFound)

	if d := of(db.DeleteRelation(bg, "kg", worksAt.ID)).must(t); !d.Deleted {
		t.Fatalf("delete relation: %+v", d)
	}
	_, err = db.ShortestPath(bg, "kg", "Bob", "Acme")
	wantCode(t, err, CodeNotFound)
	if d := of(db.DeleteEntity(bg, "kg", "Alice")).must(t); !d.Deleted || d.Name != "Alice" {
		t.Fatalf("delete entity: %+v", d)
	}
	if g := of(db.Neighbors(bg, "kg", "Bob", nil)).must(t); len(g.Relations) != 0 {
		t.Fatalf("Alice's relations survived her: %+v", g)
	}
	if ns := of(db.GetNamespace(bg, "kg")).must(t); ns.EntityCount != 2 || ns.RelationCount != 0 {
		t.Fatalf("counts: %+v", ns)
	}
}

func entityNames(es []Entity) map[string]bool {
	names := map[string]bool{}
	for _, e := range es {
		names[e.Name] = true
	}
	return names
}
