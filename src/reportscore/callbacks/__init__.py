"""Push callbacks: the SSRF guard on callback URLs, signing, and the outbox dispatcher."""
