-- Rows in force at every epoch: `weights` holds each accepted row once, at
-- the epoch it was accepted; `state.weights_epoch` names, per peer and epoch,
-- the row in force (null: none, e.g. expired by weights_ttl).
SELECT s.epoch, w.src, w.dst, w.weight, s.weights_epoch
FROM state s
JOIN weights w ON w.src = s.uid AND w.epoch = s.weights_epoch
