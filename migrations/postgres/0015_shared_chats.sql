-- Shared (transparent) chats: one conversation whose members all see it and
-- write in it, as a company's members see their company's conversation.
-- The conversation's own person_id stays its first member. Rows go with
-- their conversation or person (a person deleted leaves the chat).
--
-- Seen and emailed positions are kept per member (ms of the newest message
-- covered): one member reading the chat says nothing of the others, so each
-- one's missed-message email is worked out on its own.
CREATE TABLE conversation_member (
    conversation_id TEXT NOT NULL REFERENCES conversation(id) ON DELETE CASCADE,
    person_id       TEXT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL,
    seen_at         BIGINT NOT NULL DEFAULT 0,
    emailed_through BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, person_id)
);
CREATE INDEX conversation_member_person ON conversation_member (person_id);
