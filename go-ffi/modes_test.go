package memsilo

import "testing"

var modeContents = []string{
	"Q3 roadmap: Omega in Sept",
	"Hiring 4 ML engineers",
	"Budget: $2.4M allocated",
	"Order ZX-4471 shipped to the Lisbon warehouse",
}

// recallModes checks the recall modes of issue 17 on db: keyword finds a word only one memory
// holds (and nothing else), vector ranks every memory, hybrid puts first the memory in both
// lists, and VectorWeight 1 follows the vector order.
func recallModes(t *testing.T, db *DB, ns string) {
	of(db.CreateNamespace(bg, ns, nil)).must(t)
	batch := make([]StoreMemoryRequest, len(modeContents))
	for i, c := range modeContents {
		batch[i] = StoreMemoryRequest{Content: c}
	}
	of(db.StoreMemories(bg, ns, batch)).must(t)

	keyword := of(db.Recall(bg, ns, RecallRequest{Query: "zx-4471", Mode: "keyword", TopK: 10})).must(t)
	if len(keyword) != 1 || keyword[0].Content != modeContents[3] || keyword[0].KeywordScore == nil || *keyword[0].KeywordScore <= 0 {
		t.Fatalf("keyword recall: %+v", keyword)
	}
	if vector := of(db.Recall(bg, ns, RecallRequest{Query: "zx-4471", Mode: "vector", TopK: 10})).must(t); len(vector) != 4 {
		t.Fatalf("vector recall: %+v", vector)
	}

	query := "how much money goes to hiring"
	hybrid := of(db.Recall(bg, ns, RecallRequest{Query: query, Mode: "hybrid", TopK: 10})).must(t)
	if hybrid[0].Content != modeContents[1] || hybrid[0].KeywordScore == nil || hybrid[0].VectorScore == nil {
		t.Fatalf("hybrid recall: %+v", hybrid)
	}
	if def := of(db.Recall(bg, ns, RecallRequest{Query: query, TopK: 10})).must(t); def[0].Content != modeContents[1] {
		t.Fatalf("default (hybrid) recall: %+v", def)
	}
	vector := of(db.Recall(bg, ns, RecallRequest{Query: query, Mode: "vector", TopK: 10})).must(t)
	weighted := of(db.Recall(bg, ns, RecallRequest{Query: query, Mode: "hybrid", VectorWeight: ptr(1.0), TopK: 10})).must(t)
	if weighted[0].Content != vector[0].Content {
		t.Fatalf("vector_weight 1: %+v, vector: %+v", weighted, vector)
	}
	_, err := db.Recall(bg, ns, RecallRequest{Query: "x", Mode: "fuzzy"})
	wantCode(t, err, CodeInvalidArgument)
}

func TestRecallModesInProcess(t *testing.T) {
	recallModes(t, openTemp(t), "modes")
}

func TestRecallModesAgainstServer(t *testing.T) {
	recallModes(t, connectAdmin(t, startCargoServer(t)), "modes-remote")
}
