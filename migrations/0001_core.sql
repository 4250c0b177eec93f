-- The raw lake and the tables derived from it. Core names follow the replaced system.
-- depends:

CREATE TABLE webhook_events (
    id                  bigserial PRIMARY KEY,
    provider            text        NOT NULL DEFAULT 'turn',
    event_type          text        NOT NULL,
    external_event_id   text        NOT NULL,
    business_number_id  text        NOT NULL,
    source              text        NOT NULL,            -- webhook | export
    subscription        text,                            -- webhook subscription, if any
    delivery_id         text,                            -- the first delivery that brought it
    payload             jsonb       NOT NULL,
    source_ts           timestamptz,                     -- the event's own time
    received_at         timestamptz NOT NULL,            -- when we took it in
    stored_at           timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz,                     -- contacts: Turn's updated_at
    processed           boolean     NOT NULL DEFAULT false,
    CONSTRAINT webhook_events_key UNIQUE (provider, event_type, external_event_id)
);
CREATE INDEX webhook_events_unprocessed ON webhook_events (id) WHERE NOT processed;
CREATE INDEX webhook_events_received_at ON webhook_events (received_at);

CREATE TABLE messages (
    id                  bigserial PRIMARY KEY,
    external_id         text        NOT NULL UNIQUE,     -- WhatsApp message id
    business_number_id  text        NOT NULL,
    direction           text,                            -- inbound | outbound
    message_type        text,
    from_addr           text,
    to_addr             text,
    contact_wa_id       text,                            -- the contact's side of the chat
    body                text,                            -- text body, caption or button text
    sent_at             timestamptz,                     -- WhatsApp timestamp
    turn_inserted_at    timestamptz,                     -- _vnd.v1.inserted_at
    turn_uuid           text,
    chat_uuid           text,
    contact_uuid        text,
    author_type         text,
    author_name         text,
    in_reply_to         text,                            -- context.id
    last_status         text,
    last_status_at      timestamptz,
    source              text        NOT NULL,            -- first source that brought it
    raw                 jsonb       NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_sent_at ON messages (business_number_id, sent_at);
CREATE INDEX messages_contact ON messages (contact_wa_id, sent_at);

CREATE TABLE statuses (
    id                  bigserial PRIMARY KEY,
    message_external_id text        NOT NULL,            -- may name a message not stored yet
    status              text        NOT NULL,
    business_number_id  text        NOT NULL,
    recipient_id        text,
    status_at           timestamptz,
    conversation_id     text,
    conversation_origin text,
    pricing_category    text,
    billable            boolean,
    errors              jsonb,
    raw                 jsonb       NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT statuses_key UNIQUE (message_external_id, status)
);

CREATE TABLE contacts (
    id                    bigserial PRIMARY KEY,
    external_id           text        NOT NULL UNIQUE,   -- Turn's contact id
    business_number_id    text        NOT NULL,
    uuid                  text,
    whatsapp_id           text,
    name                  text,
    surname               text,
    whatsapp_profile_name text,
    language              text,
    opted_in              boolean,
    opted_in_at           timestamptz,
    turn_inserted_at      timestamptz,
    turn_updated_at       timestamptz,                   -- newest-wins on this
    raw                   jsonb       NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_whatsapp_id ON contacts (whatsapp_id);
