"""Teachers behind one interface: OpenAI-compatible servers, vLLM, llama.cpp, transformers and a fake."""
