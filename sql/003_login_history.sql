-- One row per `user.logged_in` event, applied once: event_id is the event's unique id.
CREATE TABLE IF NOT EXISTS `login_history`
(
    `id`             bigint unsigned NOT NULL AUTO_INCREMENT,
    `event_id`       varchar(64) CHARACTER SET ascii NOT NULL COMMENT 'the event id (Nats-Msg-Id)',
    `user_id`        int(10) unsigned NOT NULL COMMENT 'public user id',
    `logged_in_at`   timestamp(3) NOT NULL,
    `client_address` varchar(64) NOT NULL DEFAULT '',
    `user_agent`     varchar(255) NOT NULL DEFAULT '',
    PRIMARY KEY (`id`),
    UNIQUE KEY `login_history_event_id_uindex` (`event_id`),
    KEY `login_history_user_id_index` (`user_id`, `logged_in_at`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_bin COMMENT ='login history, from user.logged_in events';
