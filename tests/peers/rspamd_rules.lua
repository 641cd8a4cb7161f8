-- Test rules for the appliance's rspamd tests, keyed on the Subject: one scores past
-- "add header" (6), one asks the sender to come back later ("soft reject").
rspamd_config:register_symbol({
  name = 'TEST_SPAMMY_SUBJECT', score = 7.0, group = 'test',
  callback = function(task)
    local subject = task:get_subject() or ''
    return subject:find('spammy offer', 1, true) ~= nil
  end,
})
rspamd_config:register_symbol({
  name = 'TEST_TRY_LATER', score = 0.0, group = 'test',
  callback = function(task)
    local subject = task:get_subject() or ''
    if subject:find('try later', 1, true) then
      task:set_pre_result('soft reject', 'come back later')
      return true
    end
    return false
  end,
})
