"""Framework adapters: memsilo as the store behind LangChain, LangGraph, mem0 and LlamaIndex.

Each adapter is a thin layer over one memsilo handle and one memsilo namespace: it converts the
framework's objects to memsilo memories, calls the handle, and maps errors. Build it from a
handle acting as a scoped key (``memsilo.connect(url, key)`` or ``db.scoped(key)``) and it can
reach only what that key allows; tenant A's adapter cannot read or change tenant B's memories.

Nothing here is imported by ``import memsilo``, and each submodule imports its framework only
when it is imported itself. Install a framework with its extra::

    pip install "memsilo[langchain]"    # memsilo.integrations.langchain
    pip install "memsilo[langgraph]"    # memsilo.integrations.langgraph
    pip install "memsilo[mem0]"         # memsilo.integrations.mem0
    pip install "memsilo[llamaindex]"   # memsilo.integrations.llama_index
"""
