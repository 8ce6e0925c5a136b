-- Users, as in the seed project, with the password stored as an Argon2id hash.
CREATE TABLE IF NOT EXISTS `user`
(
    `id`              int(10) unsigned NOT NULL AUTO_INCREMENT COMMENT 'row id',
    `user_id`         int(10) unsigned NOT NULL COMMENT 'public user id',
    `user_name`       varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'login name',
    `pwd`             varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'Argon2id hash, never the password',
    `created_time`    timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_time`    timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    `last_login_time` timestamp(3) NULL DEFAULT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY `user_user_name_uindex` (`user_name`),
    UNIQUE KEY `user_user_id_uindex` (`user_id`)
) ENGINE = InnoDB
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_bin COMMENT ='users';
