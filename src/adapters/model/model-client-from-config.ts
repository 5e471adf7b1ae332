import { BerthError } from '../../errors/berth-error.js';
import {
  OpenAiCompatibleModel,
  type OpenAiCompatibleModelOptions,
} from './openai-compatible-model.js';

/**
 * The model client the configuration describes (`config.model`: BERTH_MODEL_BASE_URL,
 * BERTH_MODEL_API_KEY, BERTH_MODEL; flags --model-base-url, --model). Refuses, naming the
 * variable, when the base URL or the model is missing.
 */
export function modelClientFromConfig(
  model: { baseUrl?: string | undefined; apiKey?: string | undefined; model?: string | undefined },
  extra: Partial<Omit<OpenAiCompatibleModelOptions, 'baseUrl' | 'apiKey' | 'model'>> = {},
): OpenAiCompatibleModel {
  if (model.baseUrl === undefined || model.baseUrl === '') {
    throw new BerthError(
      'invalid_input',
      'no model API is configured: set BERTH_MODEL_BASE_URL (or --model-base-url)',
      {
        field: 'model.baseUrl',
      },
    );
  }
  if (model.model === undefined || model.model === '') {
    throw new BerthError('invalid_input', 'no model is configured: set BERTH_MODEL (or --model)', {
      field: 'model.model',
    });
  }
  return new OpenAiCompatibleModel({
    ...extra,
    baseUrl: model.baseUrl,
    model: model.model,
    ...(model.apiKey !== undefined && model.apiKey !== '' ? { apiKey: model.apiKey } : {}),
  });
}
