-- Each member of a shared chat answers its missed-message email as
-- themselves: their own reply token, given the first time they are emailed
-- (the conversation's token in email_fallback stays its first member's).
ALTER TABLE conversation_member ADD COLUMN reply_token TEXT;
CREATE UNIQUE INDEX conversation_member_reply ON conversation_member (reply_token) WHERE reply_token IS NOT NULL;
