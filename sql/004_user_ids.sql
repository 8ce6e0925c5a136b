-- Public user ids, allocated by the database: CreateUser without an id inserts a row here
-- and takes the AUTO_INCREMENT value, so concurrent creates never race for one id. An id
-- given by the caller is inserted too, which moves the counter past it. Ids start after
-- the seed user's 10001.
CREATE TABLE IF NOT EXISTS `user_id_seq`
(
    `id` int(10) unsigned NOT NULL AUTO_INCREMENT COMMENT 'a public user id, taken',
    PRIMARY KEY (`id`)
) ENGINE = InnoDB
  AUTO_INCREMENT = 10002
  DEFAULT CHARSET = utf8mb4
  COLLATE = utf8mb4_bin COMMENT ='user ids allocated so far';
