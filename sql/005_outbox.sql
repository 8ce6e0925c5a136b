-- user_service's transactional outbox (shared/outbox): events written in the transaction
-- of the change that causes them, published and deleted by the relay once NATS acked them.
CREATE TABLE IF NOT EXISTS `outbox`
(
    `id`         bigint unsigned NOT NULL AUTO_INCREMENT,
    `event_id`   varchar(64) CHARACTER SET ascii NOT NULL COMMENT 'the event id (Nats-Msg-Id)',
    `subject`    varchar(255) CHARACTER SET ascii NOT NULL,
    `payload`    mediumtext CHARACTER SET ascii NOT NULL COMMENT 'base64 of the protobuf event',
    `headers`    text NOT NULL COMMENT 'JSON: the headers to publish with',
    `created_at` timestamp(3) NOT NULL DEFAULT current_timestamp(3),
    PRIMARY KEY (`id`),
    UNIQUE KEY `outbox_event_id_uindex` (`event_id`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_bin COMMENT ='events waiting to be published';
