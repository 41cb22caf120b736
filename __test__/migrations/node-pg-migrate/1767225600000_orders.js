// A node-pg-migrate migration: a type, a table using it, a function and a trigger.
exports.up = (pgm) => {
  pgm.createType('order_state', ['new', 'paid', 'shipped']);
  pgm.createTable('orders', {
    id: 'id',
    state: { type: 'order_state', notNull: true, default: 'new' },
    total: { type: 'numeric(12,2)', notNull: true },
    updated_at: { type: 'timestamptz', notNull: true, default: pgm.func('now()') },
  });
  pgm.createFunction('touch_updated_at', [], { returns: 'trigger', language: 'plpgsql', replace: true }, 'BEGIN NEW.updated_at := now(); RETURN NEW; END;');
  pgm.createTrigger('orders', 'orders_touch', { when: 'BEFORE', operation: 'UPDATE', function: 'touch_updated_at', level: 'ROW' });
};

exports.down = (pgm) => {
  pgm.dropTable('orders');
  pgm.dropFunction('touch_updated_at', []);
  pgm.dropType('order_state');
};
